"""Bearer tokens: who the caller is, and whether they still may act.

Two kinds of token are verified. Local tokens are HS256, signed with TRACKFLOW_TOKEN_SECRET (a
local stack makes one on first use and keeps it in its data directory, so that the CLI can act
as any named user). A deployment with an OpenID Connect provider (``oidc_issuer``) accepts only
that provider's RS256/ES256 tokens, checked against its published keys (JWKS), which are
fetched again when a token names a key not seen yet (key rotation).

Every token must name our audience, be signed by the issuer we trust, and live no longer than
``token_max_lifetime_s``. What a token says is not the last word: administrator rights and
revocation come from the users table at request time (:func:`standing`).

Revocation is a per-user ``tokens_valid_after`` (epoch seconds) in the users table, compared
with the token's standard ``iat``: unlike a version claim it works for an identity provider's
tokens we never minted, and unlike a ``jti`` denylist it is one attribute per user, not one
entry per token to keep until it expires.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from trackflow.domain.keys import USER_ID
from trackflow.settings import Settings

__all__ = [
    "AuthError",
    "Claims",
    "KeysUnavailable",
    "Principal",
    "TokenPolicy",
    "decode_token",
    "mint_playback_token",
    "mint_token",
    "playback_viewer",
    "standing",
    "token_secret",
    "verify_token",
]

ISSUER = "trackflow"
ALGORITHM = "HS256"
# Playback tokens ride in playlist URLs, where a player sends no Authorization header. Their
# own audience keeps one from passing as a bearer token, and each names one track.
PLAYBACK_AUDIENCE = "trackflow-playback"


class AuthError(Exception):
    """The token is missing, malformed, tampered with, expired or revoked. Its message is a
    sentence of ours, safe to show the caller."""


class KeysUnavailable(AuthError):
    """The identity provider's keys could not be fetched: no fault of the token's."""


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who, since when, and (if it says so) their email."""

    user_id: str
    issued_at: int
    email: str | None = None


@dataclass(frozen=True)
class Principal:
    """The caller, as the users table stands now."""

    user_id: str
    admin: bool = False
    email: str | None = None


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must satisfy to be accepted."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    max_lifetime_s: int
    leeway_s: int
    user_claim: str = "sub"

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenPolicy:
        if settings.oidc_issuer is not None:
            return cls(
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience or settings.token_audience,
                algorithms=settings.oidc_algorithms,
                max_lifetime_s=settings.token_max_lifetime_s,
                leeway_s=settings.oidc_leeway_s,
                user_claim=settings.oidc_user_claim,
            )
        return cls(
            issuer=ISSUER,
            audience=settings.token_audience,
            algorithms=(ALGORITHM,),
            max_lifetime_s=settings.token_max_lifetime_s,
            leeway_s=0,  # we minted it, by the clock we check it with
        )


# PyJWT's refusals, in our words: its own messages name library internals
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token was issued for another service"),
    (jwt.InvalidIssuerError, "the token comes from an issuer this service does not trust"),
    (jwt.InvalidAlgorithmError, "the token is signed with an algorithm this service refuses"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a claim this service requires"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


def _refusal(error: jwt.PyJWTError) -> str:
    for kind, sentence in _REFUSALS:
        if isinstance(error, kind):
            return sentence
    return "the token is invalid"


def decode_token(token: str, key: Any, policy: TokenPolicy) -> Claims:
    """The claims of ``token`` if ``key`` signed it and it keeps to ``policy``; else
    :class:`AuthError`. Pure but for the clock."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(policy.algorithms),
            issuer=policy.issuer,
            audience=policy.audience,
            leeway=policy.leeway_s,
            options={"require": ["exp", "iat", "iss", "aud", policy.user_claim]},
        )
    except jwt.PyJWTError as error:
        raise AuthError(_refusal(error)) from error
    issued_at, expires_at = claims["iat"], claims["exp"]
    if not all(isinstance(t, int | float) for t in (issued_at, expires_at)):
        raise AuthError("the token's times are not numbers")
    if expires_at - issued_at > policy.max_lifetime_s:
        raise AuthError(f"the token lives longer than {policy.max_lifetime_s} s, our limit")
    user_id = claims[policy.user_claim]
    if not isinstance(user_id, str) or not USER_ID.match(user_id):
        raise AuthError("the token names no valid user")
    # an address counts only where the issuer says it verified it (OpenID Connect's
    # email_verified): an unconfirmed one at the provider must not receive our mail
    email = claims.get("email") if claims.get("email_verified") is True else None
    return Claims(user_id, int(issued_at), email if isinstance(email, str) else None)


def standing(claims: Claims, profile: Mapping[str, Any] | None) -> Principal:
    """The caller a verified token names, as their profile stands now: refused if their tokens
    were revoked after this one was issued; an administrator only if the profile says so."""
    profile = profile or {}
    valid_after = profile.get("tokens_valid_after")
    if isinstance(valid_after, int | float) and claims.issued_at < valid_after:
        raise AuthError("the token was revoked: sign in again")
    return Principal(claims.user_id, admin=profile.get("admin") is True, email=claims.email)


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
    settings: Settings,
    user_id: str,
    *,
    email: str | None = None,
    ttl_s: int | None = None,
    issued_at: int | None = None,
) -> str:
    """A local HS256 token for ``user_id``. It carries no rights: those are the users
    table's."""
    if not USER_ID.match(user_id):
        raise ValueError("user names are 1-63 characters: a-z, 0-9, '_', '.' and '-'")
    now = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": settings.token_audience,
        "sub": user_id,
        "iat": now,
        "exp": now + (ttl_s or settings.token_ttl_s),
    }
    if email:
        claims.update(email=email, email_verified=True)  # our own secret vouches for it
    return jwt.encode(claims, token_secret(settings), algorithm=ALGORITHM)


@functools.lru_cache(maxsize=8)
def _jwks_client(url: str, cache_s: int, cooldown_s: float) -> jwt.PyJWKClient:
    """One client per key set and process, so that its cache of keys is shared by requests."""
    return jwt.PyJWKClient(
        url, cache_keys=False, lifespan=cache_s, timeout=10, cooldown_duration=cooldown_s
    )


def _signing_key(settings: Settings, token: str) -> Any:
    if settings.oidc_issuer is None:
        return token_secret(settings)
    url = settings.oidc_jwks_url or f"{settings.oidc_issuer.rstrip('/')}/.well-known/jwks.json"
    try:
        client = _jwks_client(url, settings.oidc_jwks_cache_s, settings.oidc_jwks_cooldown_s)
        return client.get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError as error:
        raise KeysUnavailable("the identity provider's keys could not be fetched") from error
    except jwt.PyJWTError as error:  # no kid, an unknown kid, a key of an unusable kind
        raise AuthError("the token is signed with a key this service does not know") from error


def verify_token(settings: Settings, token: str) -> Claims:
    """The claims of a token signed as ``settings`` say tokens are (local secret or the
    identity provider's keys). Rights and revocation are :func:`standing`'s business."""
    return decode_token(token, _signing_key(settings, token), TokenPolicy.from_settings(settings))


def mint_playback_token(settings: Settings, viewer: str, track_id: str, ttl_s: int) -> str:
    """A token that lets ``viewer`` fetch ``track_id``'s playlists for ``ttl_s`` seconds."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": PLAYBACK_AUDIENCE,
        "sub": viewer,
        "trk": track_id,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, token_secret(settings), algorithm=ALGORITHM)


def playback_viewer(settings: Settings, token: str, track_id: str) -> Claims:
    """The viewer a playback token names (and when it was issued, for revocation), if it is
    ours, unexpired and for ``track_id``; else :class:`AuthError`."""
    try:
        claims = jwt.decode(
            token,
            token_secret(settings),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=PLAYBACK_AUDIENCE,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "trk"]},
        )
    except jwt.PyJWTError as error:
        raise AuthError(_refusal(error)) from error
    if claims["trk"] != track_id:
        raise AuthError("the playback link is for another track")
    return Claims(str(claims["sub"]), int(claims["iat"]))
