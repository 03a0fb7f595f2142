"""Per-user limits on the emulator: counted in DynamoDB, so shared by every API replica, and
refused (429, Retry-After, the error shape) before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from trackflow.adapters import aws
from trackflow.adapters.state.tracks import TrackStore
from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.settings import Settings

pytestmark = pytest.mark.usefixtures("emulator")

Replicas = Callable[..., tuple[TestClient, TestClient]]


@pytest.fixture
def replicas(settings: Settings) -> Replicas:
    """Two API apps, as two replicas would run, on the same tables, with the limits given."""

    def make(**limits: Any) -> tuple[TestClient, TestClient]:
        configured = settings.model_copy(update=limits)
        return TestClient(create_app(configured)), TestClient(create_app(configured))

    return make


def _user(prefix: str = "lim") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user)}"}


def _upload(api: TestClient, settings: Settings, user: str, size: int | None = 1000) -> Any:
    body: dict[str, Any] = {"filename": "song.mp3", "content_type": "audio/mpeg"}
    if size is not None:
        body["size"] = size
    return api.post("/v1/uploads", headers=_auth(settings, user), json=body)


def _tracks(api: TestClient, settings: Settings, user: str) -> list[dict[str, Any]]:
    listed = api.get("/v1/tracks", params={"limit": 100}, headers=_auth(settings, user))
    tracks: list[dict[str, Any]] = listed.json()["tracks"]
    return tracks


def _assert_limited(response: httpx.Response, longest_s: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= longest_s


def test_two_replicas_share_the_hourly_upload_count(replicas: Replicas, settings: Settings):
    """Uploads alternate between two apps: the third overall is refused, by either, and no
    track is recorded for it."""
    one, two = replicas(limit_uploads_per_hour=2)
    user = _user()
    assert _upload(one, settings, user).status_code == 201
    assert _upload(two, settings, user).status_code == 201
    _assert_limited(_upload(one, settings, user), 3600)
    _assert_limited(_upload(two, settings, user), 3600)
    assert len(_tracks(one, settings, user)) == 2
    assert _upload(one, settings, _user()).status_code == 201  # another user is not limited


def test_replicas_racing_for_the_last_slots_never_pass_the_limit(
    replicas: Replicas, settings: Settings
):
    """Twelve uploads at once through two apps, five allowed a day: exactly five succeed."""
    one, two = replicas(limit_uploads_per_day=5)
    user = _user()
    with ThreadPoolExecutor(6) as pool:
        codes = list(
            pool.map(lambda n: _upload((one, two)[n % 2], settings, user).status_code, range(12))
        )
    assert sorted(codes) == [201] * 5 + [429] * 7
    assert len(_tracks(one, settings, user)) == 5


def test_declared_bytes_a_day_are_limited_and_an_undeclared_size_counts_as_the_maximum(
    replicas: Replicas, settings: Settings
):
    """2500 bytes a day: two uploads of 1000 fit, a third does not; with no declared size the
    policy allows the maximum, which alone is over the quota."""
    api, _ = replicas(limit_upload_bytes_per_day=2500)
    user = _user()
    assert _upload(api, settings, user, 1000).status_code == 201
    assert _upload(api, settings, user, 1000).status_code == 201
    _assert_limited(_upload(api, settings, user, 1000), 24 * 3600)
    assert _upload(api, settings, user, 500).status_code == 201  # what is left still fits
    _assert_limited(_upload(api, settings, _user(), None), 24 * 3600)


def test_uploads_in_flight_are_limited_until_one_ends(replicas: Replicas, settings: Settings):
    """Two unfinished tracks at most: the third waits until one of them has ended."""
    one, two = replicas(limit_uploads_in_flight=2)
    user = _user()
    first = _upload(one, settings, user).json()["track_id"]
    assert _upload(two, settings, user).status_code == 201
    refused = _upload(two, settings, user)
    _assert_limited(refused, 60)
    assert "not finished" in refused.json()["error"]["message"]
    store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    store.mark(first, status="failed")  # as the sweeper ends an upload that never came
    assert _upload(one, settings, user).status_code == 201


def test_administrators_are_exempt_and_priority_accounts_get_more(
    replicas: Replicas, settings: Settings
):
    """With one upload an hour, an administrator uploads three times and a priority account
    (factor 3) three times, its fourth refused."""
    api, _ = replicas(limit_uploads_per_hour=1, priority_limits_factor=3)
    for _ in range(3):
        assert _upload(api, settings, "admin").status_code == 201
    vip = _user("vip")
    api.get("/v1/me", headers=_auth(settings, vip))
    promoted = api.patch(
        f"/v1/users/{vip}", headers=_auth(settings, "admin"), json={"priority": True}
    )
    assert promoted.status_code == 200
    for _ in range(3):
        assert _upload(api, settings, vip).status_code == 201
    _assert_limited(_upload(api, settings, vip), 3600)


def test_reprocessing_one_track_is_limited_per_hour(replicas: Replicas, settings: Settings):
    """Two reprocess calls an hour per track: the third answers 429 before the workflow is
    even looked at (here a track never uploaded, so the first two are 409)."""
    one, two = replicas(limit_reprocess_per_track_per_hour=2)
    user = _user()
    track_id = _upload(one, settings, user).json()["track_id"]
    path = f"/v1/tracks/{track_id}/reprocess"
    assert one.post(path, headers=_auth(settings, user)).status_code == 409
    assert two.post(path, headers=_auth(settings, user)).status_code == 409
    _assert_limited(one.post(path, headers=_auth(settings, user)), 3600)
    other = _upload(one, settings, user).json()["track_id"]  # the limit is per track
    assert one.post(f"/v1/tracks/{other}/reprocess", headers=_auth(settings, user)).status_code == (
        409
    )


def test_sessions_per_name_are_limited_per_hour(replicas: Replicas, settings: Settings):
    """Two sign-ins an hour for a name, across both replicas; another name is not affected."""
    one, two = replicas(limit_sessions_per_hour=2)
    user = _user()
    assert one.post("/v1/session", json={"user": user}).status_code == 201
    assert two.post("/v1/session", json={"user": user}).status_code == 201
    _assert_limited(one.post("/v1/session", json={"user": user}), 3600)
    assert two.post("/v1/session", json={"user": _user()}).status_code == 201


def test_profile_changes_are_limited_and_a_refused_one_writes_nothing(
    replicas: Replicas, settings: Settings
):
    """Two profile changes an hour: the third is refused and its change not applied."""
    one, two = replicas(limit_profile_changes_per_hour=2)
    user = _user()
    headers = _auth(settings, user)
    assert one.patch("/v1/me", headers=headers, json={"email_opt_out": True}).status_code == 200
    assert two.patch("/v1/me", headers=headers, json={"email_opt_out": False}).status_code == 200
    _assert_limited(one.patch("/v1/me", headers=headers, json={"email_opt_out": True}), 3600)
    assert one.get("/v1/me", headers=headers).json()["email_opt_out"] is False
