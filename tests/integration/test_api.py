"""The API on the emulator: presigned uploads whose policy S3 enforces, and tracks that only
their owner can see."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from trackflow.adapters import aws
from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.settings import AwsTarget, Settings

pytestmark = pytest.mark.usefixtures("emulator")


@pytest.fixture(scope="module")
def api(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user)}"}


def _upload(api: TestClient, settings: Settings, user: str = "alice", **body: object) -> dict:
    response = api.post(
        "/v1/uploads",
        headers=_auth(settings, user),
        json={"filename": "My Song.mp3", "content_type": "audio/mpeg", "size": 1000, **body},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_presigned_policy_pins_key_type_size_and_expiry(api: TestClient, settings: Settings):
    created = _upload(api, settings)
    upload = created["upload"]
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": upload["key"]} in conditions
    assert {"bucket": settings.uploads_bucket} in conditions
    assert {"Content-Type": "audio/mpeg"} in conditions
    assert ["content-length-range", 1000, 1000] in conditions  # exactly the declared size
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 900
    assert upload["key"].startswith(f"{settings.uploads_prefix}alice/{created['track_id']}/")
    assert created["track"]["status"] == "awaiting_upload"
    assert created["track"]["progress"] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"content_type": "image/png"}, "unsupported_content_type"),
        ({"content_type": "text/html"}, "unsupported_content_type"),
        ({"size": 10**12}, "too_large"),
    ],
)
def test_bad_upload_requests_are_refused(
    api: TestClient, settings: Settings, body: dict, code: str
):
    response = api.post(
        "/v1/uploads",
        headers=_auth(settings, "alice"),
        json={"filename": "x.mp3", "content_type": "audio/mpeg", **body},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_a_user_sees_only_their_own_tracks(api: TestClient, settings: Settings):
    track_id = _upload(api, settings, "alice")["track_id"]
    assert api.get(f"/v1/tracks/{track_id}", headers=_auth(settings, "alice")).status_code == 200
    stranger = api.get(f"/v1/tracks/{track_id}", headers=_auth(settings, "mallory"))
    assert stranger.status_code == 404  # as if it did not exist
    listed = api.get("/v1/tracks", headers=_auth(settings, "mallory")).json()["tracks"]
    assert track_id not in {t["track_id"] for t in listed}
    mine = api.get("/v1/tracks", headers=_auth(settings, "alice")).json()["tracks"]
    assert track_id in {t["track_id"] for t in mine}


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic YWxpY2U6eA=="])
def test_routes_need_a_valid_token(api: TestClient, header: str | None):
    headers = {"Authorization": header} if header else {}
    response = api.get("/v1/tracks", headers=headers)
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("unauthenticated", "invalid_token", "http_error")


def test_cursor_pagination_of_my_tracks(api: TestClient, settings: Settings):
    for _ in range(3):
        _upload(api, settings, "pager")
    first = api.get("/v1/tracks?limit=2", headers=_auth(settings, "pager")).json()
    assert len(first["tracks"]) == 2 and first["next_cursor"]
    second = api.get(
        f"/v1/tracks?limit=2&cursor={first['next_cursor']}", headers=_auth(settings, "pager")
    ).json()
    assert len(second["tracks"]) == 1
    stolen = api.get(f"/v1/tracks?cursor={first['next_cursor']}", headers=_auth(settings, "eve"))
    assert stolen.status_code == 400


def test_openapi_is_served(api: TestClient):
    schema = api.get("/openapi.json").json()
    assert "/v1/uploads" in schema["paths"] and api.get("/docs").status_code == 200


def _post_to_s3(upload: dict, body: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        upload["url"],
        data={**upload["fields"], **fields},
        files={"file": ("song.mp3", body, fields.get("Content-Type", "audio/mpeg"))},
        timeout=30,
    )


def test_s3_stores_an_upload_that_keeps_to_its_policy(api: TestClient, settings: Settings):
    upload = _upload(api, settings)["upload"]
    stored = _post_to_s3(upload, b"x" * 1000)
    assert stored.status_code == 204, stored.text


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"size": 10}, 400, "EntityTooLarge"),  # the file is larger than the policy allows
        ({"Content-Type": "text/html"}, 403, "AccessDenied"),
        ({"key": "uploads/mallory/elsewhere/song.mp3"}, 403, "AccessDenied"),
        ({"policy": "tampered"}, 403, "SignatureDoesNotMatch"),
        ({"acl": "public-read"}, 403, "AccessDenied"),  # a field the policy does not name
    ],
)
def test_s3_refuses_an_upload_outside_its_policy(
    api: TestClient, settings: Settings, change: dict, status: int, code: str
):
    if "size" in change:  # a policy for 10 bytes at most, then 1000 sent
        settings = settings.model_copy(update={"max_upload_bytes": 10})
        upload = _upload(TestClient(create_app(settings)), settings, size=10)["upload"]
        change = {}
    else:
        upload = _upload(api, settings)["upload"]
    if change.get("policy") == "tampered":  # the same policy, with the size limit lifted
        policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
        policy["conditions"] = [c for c in policy["conditions"] if "content-length-range" not in c]
        change = {"policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    refused = _post_to_s3(upload, b"x" * 1000, **change)
    assert refused.status_code == status and f"<Code>{code}</Code>" in refused.text
    key = change.get("key", upload["key"])
    s3 = aws.client("s3", settings)
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=settings.uploads_bucket, Key=key)


def test_s3_refuses_an_upload_after_its_policy_expired(api: TestClient, settings: Settings):
    expired = settings.model_copy(update={"presign_expiry_s": -1})
    upload = _upload(TestClient(create_app(expired)), expired)["upload"]
    refused = _post_to_s3(upload, b"x" * 1000)
    assert refused.status_code == 403 and "Policy expired" in refused.text


def test_expired_and_tampered_tokens_are_refused(api: TestClient, settings: Settings):
    expired = mint_token(settings, "alice", ttl_s=-60)
    head, payload, signature = mint_token(settings, "alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "admin": True}).encode()).rstrip(b"=")
    for token in (expired, f"{head}.{forged.decode()}.{signature}"):
        response = api.get("/v1/tracks", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/tracks/{id}"),
        ("GET", "/v1/tracks/{id}/playback"),
        ("DELETE", "/v1/tracks/{id}"),
        ("POST", "/v1/tracks/{id}/reprocess"),
    ],
)
def test_no_route_reaches_another_users_track(
    api: TestClient, settings: Settings, method: str, path: str
):
    track_id = _upload(api, settings, "alice")["track_id"]
    response = api.request(method, path.format(id=track_id), headers=_auth(settings, "mallory"))
    assert response.status_code == 404, response.text
    owner = api.get(f"/v1/tracks/{track_id}", headers=_auth(settings, "alice"))
    assert owner.status_code == 200 and owner.json()["status"] == "awaiting_upload"


def test_local_sign_in_gives_a_token_for_a_name(api: TestClient, settings: Settings):
    session = api.post("/v1/session", json={"user": "web-dave"})
    assert session.status_code == 201, session.text
    token = session.json()["token"]
    me = api.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["user_id"] == "web-dave"
    assert api.post("/v1/session", json={"user": "Not A Name"}).status_code == 422


def test_a_deployment_offers_no_local_sign_in(settings: Settings):
    on_aws = TestClient(create_app(settings.model_copy(update={"aws_target": AwsTarget.AWS})))
    response = on_aws.post("/v1/session", json={"user": "web-dave"})
    assert response.status_code == 404


def test_playback_of_a_track_without_media_yet(api: TestClient, settings: Settings):
    track_id = _upload(api, settings, "alice", filename="Quiet Song.mp3")["track_id"]
    play = api.get(f"/v1/tracks/{track_id}/playback", headers=_auth(settings, "alice")).json()
    assert play["title"] == "Quiet Song" and play["status"] == "awaiting_upload"
    assert play["renditions"] == {} and play["artwork"] == {} and play["peaks"] is None


def test_the_workflow_shape_is_served_for_drawing(api: TestClient, settings: Settings):
    stages = api.get("/v1/workflow", headers=_auth(settings, "alice")).json()["stages"]
    assert [s["name"] for s in stages] == ["checks", "renditions", "publication"]
    assert ["extract_metadata", "resize_artwork"] in stages[0]["branches"]


def test_the_web_client_is_served_with_a_strict_policy(api: TestClient, settings: Settings):
    home = api.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/app/"
    page = api.get("/app/")
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy
    assert settings.endpoint_url and settings.endpoint_url in policy  # S3 on the emulator
    assert api.get("/app/app.js").headers["content-type"].startswith("text/javascript")
