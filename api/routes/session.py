"""Signing in on the embedded stack, where anyone may act as any named user.

The token carries no rights: whether its user administers is the users table's to say (on the
embedded stack, the names in ``local_admins`` are recorded as administrators when first seen).
"""

from fastapi import APIRouter

from trackflow.api.dependencies import AppSettings, Limits
from trackflow.api.errors import ApiError
from trackflow.api.limits import session_windows
from trackflow.api.schemas import Session, SessionRequest
from trackflow.auth import mint_token

router = APIRouter()


@router.post("/v1/session", status_code=201, response_model=Session)
def sign_in(request: SessionRequest, settings: AppSettings, limits: Limits) -> Session:
    """The embedded stack only: a token for any named user, as the CLI's ``--user`` mints
    (429 past the sign-ins a name may have an hour). Elsewhere (LocalStack and AWS) tokens
    come from the identity provider; there this route is 404."""
    if not settings.local_sign_in:
        raise ApiError(404, "not_found", "sign in through your identity provider")
    limits.take(session_windows(settings, request.user))
    token = mint_token(settings, request.user)
    return Session(user=request.user, token=token, expires_in=settings.token_ttl_s)
