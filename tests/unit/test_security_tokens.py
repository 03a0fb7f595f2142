"""Token verification: audience, lifetime, revocation and rights from the users table, and an
OpenID Connect provider's RS256/ES256 tokens checked against a JWKS served on the loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trackflow.auth import AuthError, Claims, mint_token, standing, token_secret, verify_token
from trackflow.settings import Settings


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def test_a_token_for_another_audience_is_refused(local: Settings):
    """A token signed with our secret but naming another service's audience is refused."""
    elsewhere = local.model_copy(update={"token_audience": "another-service"})
    with pytest.raises(AuthError, match="another service"):
        verify_token(local, mint_token(elsewhere, "alice"))
    assert verify_token(local, mint_token(local, "alice")).user_id == "alice"


def test_a_token_without_an_audience_is_refused(local: Settings):
    """Tokens minted before audiences were checked (no aud claim) are refused."""
    now = int(time.time())
    claims = {"iss": "trackflow", "sub": "alice", "iat": now, "exp": now + 60}
    with pytest.raises(AuthError, match="lacks a claim"):
        verify_token(local, jwt.encode(claims, token_secret(local), algorithm="HS256"))


def test_a_token_that_lives_longer_than_the_bound_is_refused(local: Settings):
    """A validly signed token whose exp - iat exceeds token_max_lifetime_s is refused."""
    bounded = local.model_copy(update={"token_max_lifetime_s": 3600})
    with pytest.raises(AuthError, match="lives longer"):
        verify_token(bounded, mint_token(bounded, "alice", ttl_s=3601))
    assert verify_token(bounded, mint_token(bounded, "alice", ttl_s=3600)).user_id == "alice"


def test_the_admin_claim_of_a_token_grants_nothing():
    """Rights come from the profile: a token claiming admin is not one without the table."""
    claims = Claims("mallory", issued_at=int(time.time()))
    assert standing(claims, {"user_id": "mallory"}).admin is False
    assert standing(claims, None).admin is False
    assert standing(claims, {"user_id": "mallory", "admin": "yes"}).admin is False
    assert standing(claims, {"user_id": "mallory", "admin": True}).admin is True


def test_tokens_issued_before_a_revocation_are_refused():
    """tokens_valid_after refuses every token issued before it and none issued after."""
    profile = {"user_id": "alice", "tokens_valid_after": 1_000}
    with pytest.raises(AuthError, match="revoked"):
        standing(Claims("alice", issued_at=999), profile)
    assert standing(Claims("alice", issued_at=1_000), profile).user_id == "alice"


# --- an OpenID Connect provider on the loopback ---------------------------------------------


class Provider:
    """A JWKS endpoint on 127.0.0.1 whose keys a test can rotate; it counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": provider.public_jwks()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_key(self, kind: str) -> str:
        kid = f"{kind}-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return kid

    def public_jwks(self) -> list[dict[str, Any]]:
        jwks = []
        for kid, key in self.keys.items():
            algorithm = (
                jwt.algorithms.RSAAlgorithm
                if isinstance(key, rsa.RSAPrivateKey)
                else (jwt.algorithms.ECAlgorithm)
            )
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            jwks.append({**jwk, "kid": kid, "use": "sig"})
        return jwks

    def sign(self, kid: str, audience: str = "trackflow-api", **claims: Any) -> str:
        key = self.keys[kid]
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        now = int(time.time())
        body = {"iss": self.issuer, "aud": audience, "sub": "dana", "iat": now, "exp": now + 600}
        return jwt.encode({**body, **claims}, key, algorithm=algorithm, headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider()
    yield running
    running.stop()


@pytest.fixture
def oidc(provider: Provider, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        oidc_issuer=provider.issuer,
        oidc_jwks_url=provider.url,
        oidc_jwks_cooldown_s=0,  # a rotated key is fetched on the first token that names it
    )


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_an_identity_providers_token_is_verified_from_its_jwks(
    provider: Provider, oidc: Settings, kind: str
):
    """RS256 and ES256 tokens of the configured issuer verify against its published keys."""
    kid = provider.add_key(kind)
    claims = verify_token(oidc, provider.sign(kid, email="dana@example.org", email_verified=True))
    assert claims.user_id == "dana" and claims.email == "dana@example.org"


def test_an_address_the_provider_has_not_verified_is_not_taken(provider: Provider, oidc: Settings):
    """Without email_verified true, the token's address is ignored: nobody can have our mail
    sent to an address they registered at the provider but never confirmed."""
    kid = provider.add_key("rsa")
    for claim in ({}, {"email_verified": False}, {"email_verified": "true"}):
        token = provider.sign(kid, email="victim@example.org", **claim)
        assert verify_token(oidc, token).email is None


def test_a_rotated_key_is_fetched_when_a_token_names_it(provider: Provider, oidc: Settings):
    """A token signed with a key published after the last fetch makes the client refetch."""
    first = provider.add_key("rsa")
    verify_token(oidc, provider.sign(first))
    fetches = provider.fetches
    second = provider.add_key("ec")
    assert verify_token(oidc, provider.sign(second)).user_id == "dana"
    assert provider.fetches == fetches + 1
    verify_token(oidc, provider.sign(first))  # known keys come from the cache
    assert provider.fetches == fetches + 1


def test_an_identity_providers_token_must_name_its_issuer_and_our_audience(
    provider: Provider, oidc: Settings
):
    """Wrong issuer, wrong audience, a key not published, or our own HS256 are all refused."""
    kid = provider.add_key("rsa")
    with pytest.raises(AuthError, match="issuer"):
        verify_token(oidc, provider.sign(kid, iss="https://evil.example/"))
    with pytest.raises(AuthError, match="another service"):
        verify_token(oidc, provider.sign(kid, audience="someone-else"))
    stranger = Provider()
    try:
        unknown = stranger.add_key("rsa")
        with pytest.raises(AuthError, match="key this service does not know"):
            verify_token(oidc, stranger.sign(unknown))
    finally:
        stranger.stop()
    with pytest.raises(AuthError):  # a local token, even signed with our secret
        verify_token(oidc, mint_token(oidc, "dana"))


def test_the_user_claim_is_a_setting(provider: Provider, oidc: Settings):
    """With oidc_user_claim the user is named by that claim; an unusable name is refused."""
    kid = provider.add_key("rsa")
    named = oidc.model_copy(update={"oidc_user_claim": "preferred_username"})
    token = provider.sign(kid, sub="00u1ab2cd3", preferred_username="dana.k")
    assert verify_token(named, token).user_id == "dana.k"
    with pytest.raises(AuthError, match="no valid user"):
        verify_token(oidc, provider.sign(kid, sub="Auth0|Dana"))


def test_an_identity_providers_long_lived_token_is_refused(provider: Provider, oidc: Settings):
    """The lifetime bound holds for the provider's tokens too."""
    kid = provider.add_key("ec")
    now = int(time.time())
    with pytest.raises(AuthError, match="lives longer"):
        verify_token(oidc, provider.sign(kid, iat=now, exp=now + 30 * 24 * 3600))
