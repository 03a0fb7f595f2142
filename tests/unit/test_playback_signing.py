"""Private HLS playback's signatures, without AWS: CloudFront signed URLs made with one custom
policy over a track's ladder, checked with the public key as CloudFront checks them; and the
playback tokens that open a track's playlists."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trackflow.api.errors import ApiError
from trackflow.api.storage import Storage
from trackflow.auth import AuthError, mint_playback_token, mint_token, playback_viewer, verify_token
from trackflow.settings import Settings

PREFIX = "tracks/ada/0123456789abcdef0123456789abcdef/hls/"


def _cloudfront_b64decode(text: str) -> bytes:
    # CloudFront's URL-safe base64: '+' '=' '/' spelled '-' '_' '~'
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cdn_settings(tmp_path, key: rsa.RSAPrivateKey) -> Settings:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return Settings(
        data_dir=tmp_path,
        media_cdn_domain="d111111abcdef8.cloudfront.net",
        media_cdn_key_pair_id="K2JCJMDEHXQW5F",
        media_cdn_private_key=pem,
    )


def test_one_policy_signs_every_segment_of_the_ladder(tmp_path, key):
    settings = _cdn_settings(tmp_path, key)
    sign = Storage(None, settings).stream_signer(PREFIX, 600)
    first, second = sign(PREFIX + "aac160/init.mp4"), sign(PREFIX + "opus96/seg_00002.m4s")
    assert first.startswith(f"https://d111111abcdef8.cloudfront.net/{PREFIX}aac160/init.mp4?")
    query = parse_qs(urlsplit(first).query)
    assert query == parse_qs(urlsplit(second).query)  # the same signature covers both
    assert query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"]
    policy = _cloudfront_b64decode(query["Policy"][0])
    [statement] = json.loads(policy)["Statement"]
    assert statement["Resource"] == f"https://d111111abcdef8.cloudfront.net/{PREFIX}*"
    expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
    assert time.time() + 590 < expires <= time.time() + 601
    # what CloudFront does with the trusted public key: verify the policy's signature
    key.public_key().verify(
        _cloudfront_b64decode(query["Signature"][0]), policy, padding.PKCS1v15(), hashes.SHA1()
    )


def test_a_cdn_domain_without_its_key_is_refused_in_words(tmp_path):
    settings = Settings(data_dir=tmp_path, media_cdn_domain="d1.cloudfront.net")
    with pytest.raises(ApiError) as refused:
        Storage(None, settings).stream_signer(PREFIX, 600)
    assert refused.value.code == "playback_unavailable"


def test_a_playback_token_opens_one_track_for_one_viewer_and_nothing_else(tmp_path):
    settings = Settings(data_dir=tmp_path)
    token = mint_playback_token(settings, "ada", "t" * 32, 60)
    assert playback_viewer(settings, token, "t" * 32).user_id == "ada"
    with pytest.raises(AuthError, match="another track"):
        playback_viewer(settings, token, "u" * 32)
    with pytest.raises(AuthError, match="another service"):
        verify_token(settings, token)  # not a bearer token
    with pytest.raises(AuthError):
        playback_viewer(settings, mint_token(settings, "ada"), "t" * 32)  # nor the reverse
    expired = mint_playback_token(settings, "ada", "t" * 32, -1)
    with pytest.raises(AuthError, match="expired"):
        playback_viewer(settings, expired, "t" * 32)
