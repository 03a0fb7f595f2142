"""Signing in on a local stack, where anyone may act as any named user."""

from fastapi import APIRouter

from trackflow.api.dependencies import AppSettings
from trackflow.api.errors import ApiError
from trackflow.api.schemas import Session, SessionRequest
from trackflow.auth import mint_token

router = APIRouter()


@router.post("/v1/session", status_code=201, response_model=Session)
def sign_in(request: SessionRequest, settings: AppSettings) -> Session:
    """Local stacks only: a token for any named user, as the CLI's ``--user`` mints. A
    deployment's tokens come from its identity provider; there this route is 404."""
    if not settings.local_sign_in:
        raise ApiError(404, "not_found", "sign in through your identity provider")
    token = mint_token(settings, request.user)
    return Session(user=request.user, token=token, expires_in=settings.token_ttl_s)
