"""Bearer tokens: signed (HS256), short-lived, naming one user and their roles.

Deployments set TRACKFLOW_TOKEN_SECRET (from a secret store); a local stack makes one secret
on first use and keeps it in its data directory, so that the CLI can act as any named user.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from trackflow.domain.keys import USER_ID
from trackflow.settings import Settings

__all__ = ["AuthError", "Principal", "mint_token", "token_secret", "verify_token"]

ISSUER = "trackflow"
ALGORITHM = "HS256"


class AuthError(Exception):
    """The token is missing, malformed, tampered with or expired."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    admin: bool = False
    email: str | None = None


def token_secret(settings: Settings) -> str:
    if settings.token_secret:
        return settings.token_secret
    path = Path(settings.data_dir) / "token-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def mint_token(
    settings: Settings, user_id: str, *, email: str | None = None, ttl_s: int | None = None
) -> str:
    if not USER_ID.match(user_id):
        raise ValueError("user names are 1-63 characters: a-z, 0-9, '_', '.' and '-'")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": user_id,
        "iat": now,
        "exp": now + (ttl_s or settings.token_ttl_s),
        "admin": user_id in settings.admin_users,
    }
    if email:
        claims["email"] = email
    return jwt.encode(claims, token_secret(settings), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            token_secret(settings),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(str(exc)) from exc
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not USER_ID.match(user_id):
        raise AuthError("the token names no valid user")
    return Principal(user_id, admin=bool(claims.get("admin")), email=claims.get("email"))
