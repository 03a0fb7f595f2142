"""The API's stores, storage, caller and settings are FastAPI dependencies: a test swaps them
through ``app.dependency_overrides`` and the routes run on the fakes, with no AWS at all."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from trackflow.adapters.state.ratelimit import Take
from trackflow.api.app import create_app
from trackflow.api.dependencies import (
    app_settings,
    limiter,
    principal,
    storage,
    track_store,
    user_store,
)
from trackflow.api.limits import Limiter
from trackflow.api.storage import Storage
from trackflow.auth import Principal
from trackflow.domain.track import Status, initial_steps
from trackflow.settings import AwsTarget, Settings

TRACK_ID = "0123456789abcdef0123456789abcdef"


class FakeTrackStore:
    """Track records in a dict, with the reads and writes the API routes use."""

    def __init__(self, *tracks: dict[str, Any]) -> None:
        self.tracks = {track["track_id"]: track for track in tracks}

    def get(self, track_id: str) -> dict[str, Any] | None:
        return self.tracks.get(track_id)

    def create(self, track: dict[str, Any]) -> None:
        self.tracks[track["track_id"]] = track

    def list_for_owner(
        self, owner: str, limit: int = 50, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return [t for t in self.tracks.values() if t["owner"] == owner][:limit], None


class FakeUserStore:
    def ensure(self, user_id: str, email: str | None = None) -> dict[str, Any]:
        return {"user_id": user_id, "priority": user_id == "vip"}


class FakeWindows:
    """Limit counters in a dict, taken as the DynamoDB transaction takes them."""

    def __init__(self) -> None:
        self.counts_by_key: dict[str, int] = {}

    def counts(self, keys: Sequence[str]) -> dict[str, int]:
        return {k: self.counts_by_key.get(k, 0) for k in keys}

    def take(self, takes: Sequence[Take]) -> bool:
        if any(self.counts_by_key.get(t.key, 0) + t.amount > t.limit for t in takes):
            return False
        for t in takes:
            self.counts_by_key[t.key] = self.counts_by_key.get(t.key, 0) + t.amount
        return True


class FakeS3:
    """Presigns without credentials: the fields say what was asked for."""

    def generate_presigned_post(self, **request: Any) -> dict[str, Any]:
        return {"url": "https://uploads.example", "fields": {"key": request["Key"]}}


def _track(owner: str) -> dict[str, Any]:
    return {
        "track_id": TRACK_ID,
        "owner": owner,
        "status": str(Status.AWAITING_UPLOAD),
        "steps": initial_steps(),
    }


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    app.dependency_overrides[limiter] = lambda: Limiter(FakeWindows(), lambda owner, since: 0)
    yield app
    app.dependency_overrides.clear()


def _as(app: FastAPI, user: str) -> None:
    app.dependency_overrides[principal] = lambda: Principal(user)


def test_a_fake_track_store_serves_the_tracks_routes(app: FastAPI):
    tracks = FakeTrackStore(_track("alice"))
    app.dependency_overrides[track_store] = lambda: tracks
    api = TestClient(app)
    _as(app, "alice")
    record = api.get(f"/v1/tracks/{TRACK_ID}")
    assert record.status_code == 200, record.text
    assert record.json()["owner"] == "alice" and record.json()["progress"] == 0
    assert [t["track_id"] for t in api.get("/v1/tracks").json()["tracks"]] == [TRACK_ID]
    _as(app, "mallory")
    assert api.get(f"/v1/tracks/{TRACK_ID}").status_code == 404  # as if it did not exist
    assert api.get("/v1/tracks").json()["tracks"] == []


def test_an_upload_is_recorded_in_the_overridden_stores(app: FastAPI, settings: Settings):
    tracks = FakeTrackStore()
    app.dependency_overrides[track_store] = lambda: tracks
    app.dependency_overrides[user_store] = lambda: FakeUserStore()
    app.dependency_overrides[storage] = lambda: Storage(FakeS3(), settings)
    _as(app, "vip")
    body = {"filename": "Song.mp3", "content_type": "audio/mpeg", "size": 1000}
    created = TestClient(app).post("/v1/uploads", json=body)
    assert created.status_code == 201, created.text
    track = tracks.tracks[created.json()["track_id"]]
    assert track["owner"] == "vip" and track["lane"] == "priority"
    assert created.json()["upload"]["fields"]["key"] == track["upload"]["key"]


def test_overridden_settings_reach_the_routes(app: FastAPI, settings: Settings):
    app.dependency_overrides[user_store] = lambda: FakeUserStore()
    app.dependency_overrides[track_store] = lambda: FakeTrackStore()
    app.dependency_overrides[app_settings] = lambda: settings.model_copy(
        update={"max_upload_bytes": 10}
    )
    _as(app, "alice")
    body = {"filename": "Song.mp3", "content_type": "audio/mpeg", "size": 11}
    refused = TestClient(app).post("/v1/uploads", json=body)
    assert refused.status_code == 400
    assert refused.json() == {"error": {"code": "too_large", "message": "the limit is 10 bytes"}}


def test_a_deployment_settings_override_turns_local_sign_in_off(app: FastAPI, settings: Settings):
    api = TestClient(app)
    assert api.post("/v1/session", json={"user": "dave"}).status_code == 201
    on_aws = settings.model_copy(update={"aws_target": AwsTarget.AWS})
    app.dependency_overrides[app_settings] = lambda: on_aws
    refused = api.post("/v1/session", json={"user": "dave"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_without_an_override_a_token_is_still_required(app: FastAPI):
    app.dependency_overrides[track_store] = lambda: FakeTrackStore()
    refused = TestClient(app).get("/v1/tracks")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


class RefusingTrackStore(FakeTrackStore):
    """DynamoDB's answer to a start key that does not fit the table (moto accepts any)."""

    def list_for_owner(
        self, owner: str, limit: int = 50, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        error = {"Error": {"Code": "ValidationException", "Message": "The provided key..."}}
        raise ClientError(error, "Query")


def test_an_edited_cursor_is_the_client_s_error_not_ours(app: FastAPI):
    """A cursor that decodes but names a start key the table refuses is a 400 bad_cursor, and
    one that is not a flat key (nested values) never reaches the store."""
    app.dependency_overrides[track_store] = lambda: RefusingTrackStore()
    _as(app, "alice")
    api = TestClient(app, raise_server_exceptions=False)  # answered as a deployment would

    def cursor(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    for value in ({"owner": "alice", "created_at": 5}, {"owner": "alice", "x": {"S": "1"}}):
        refused = api.get("/v1/tracks", params={"cursor": cursor(value)})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "bad_cursor"
