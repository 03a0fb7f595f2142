"""The API on the emulator: presigned uploads whose policy S3 enforces, and tracks that only
their owner can see."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from trackflow.api.app import create_app

from trackflow.auth import mint_token
from trackflow.settings import Settings

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
    assert ["content-length-range", 1, settings.max_upload_bytes] in conditions
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
