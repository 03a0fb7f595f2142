"""Confirming an email address by the link sent to it.

The link carries its own credential (a random token, stored hashed, for a limited time), so
these routes take no bearer token: a mail client opens the link without one. Following the
link (GET) shows a page with a button; only its POST confirms, so that a mail scanner that
fetches every link in a message does not confirm an address on its owner's behalf.
"""

from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from trackflow.adapters import aws
from trackflow.adapters.state.users import EmailVerifications
from trackflow.api.dependencies import AppSettings, Users
from trackflow.api.errors import ApiError
from trackflow.api.verification import VERIFY_PATH

router = APIRouter()

# what EmailVerifications.issue hands out: 32 random bytes, URL-safe base64
VerifyToken = Annotated[
    str,
    Query(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", description="from the link"),
]


def verifications(settings: AppSettings) -> EmailVerifications:
    return EmailVerifications(aws.client("dynamodb", settings), settings.table("idempotency"))


Verifications = Annotated[EmailVerifications, Depends(verifications)]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Confirm your email address</title></head>
<body>
<p>Confirm this address for your trackflow account?</p>
<form method="post" action="{action}"><button type="submit">Confirm</button></form>
</body></html>
"""


@router.get(
    "/v1/me/email/verify",
    # the page is HTML; its refusals are the API's JSON errors, as everywhere
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def verification_page(token: VerifyToken) -> HTMLResponse:
    """The page a verification link opens: a button that confirms the address (POST)."""
    action = escape(f"{VERIFY_PATH}?{urlencode({'token': token})}")
    return HTMLResponse(_PAGE.format(action=action))


@router.post("/v1/me/email/verify")
def verify_email(token: VerifyToken, verifications: Verifications, users: Users) -> dict[str, str]:
    """Confirm the address the token was sent to: from now on the account's mail goes there.
    400 for a link that is unknown, used, expired, or for an address since replaced."""
    redeemed = verifications.redeem(token)
    profile = users.confirm_email(*redeemed) if redeemed else None
    if profile is None:
        raise ApiError(
            400,
            "invalid_verification",
            "this confirmation link is not valid any more; change the address again for a new one",
        )
    return {"user_id": profile["user_id"], "email": profile["email"]}
