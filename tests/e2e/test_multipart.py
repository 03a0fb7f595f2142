"""A large file through the CLI's uploader on the whole stack: sent in parts, interrupted by a
part that keeps failing, resumed from what S3 holds, then processed and published."""

from __future__ import annotations

import base64
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.audio import pad_mp3
from trackflow.adapters import aws
from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.cli.client import ApiClient, ApiError
from trackflow.cli.progress import resume_state_path, upload_with_progress
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

MIB = 1024**2
SIZE = 12 * 10**6  # three parts of 5 MiB (the last shorter)


def _client(settings: Settings, user: str) -> ApiClient:
    """The CLI's client, talking to an API whose multipart threshold is low (the stack's
    consumer and workers do the rest)."""
    small = settings.model_copy(
        update={"multipart_threshold_bytes": 6 * MIB, "multipart_part_bytes": 5 * MIB}
    )
    client = ApiClient(settings.api_url, mint_token(settings, user))
    client._http = TestClient(
        create_app(small),
        base_url=settings.api_url,
        headers={"Authorization": f"Bearer {mint_token(settings, user)}"},
    )
    return client


def test_an_interrupted_upload_in_parts_resumes_and_publishes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Part 2 fails on every try: the upload stops with parts 1 and 3 in S3; run again, only
    part 2 is sent, the progress counts the held bytes, and the track publishes with the stored
    object's CRC32 equal to the file's."""
    audio = write_track(SampleTrack("Long Mix", "Parts", seconds=5, seed=3303), tmp_path / "m.mp3")
    pad_mp3(audio, SIZE)
    client = _client(settings, f"mp-{uuid.uuid4().hex[:6]}")
    state_dir = tmp_path / "state"
    put_part = ApiClient._put_part
    sent: list[int] = []

    def flaky(self: ApiClient, track_id: str, number: int, *args: Any) -> str:
        if number == 2 and not sent_once:
            raise ApiError(503, "upload_failed", "part 2: connection failed (5 attempts)")
        sent.append(number)
        return put_part(self, track_id, number, *args)

    sent_once = False
    monkeypatch.setattr(ApiClient, "_put_part", flaky)
    with pytest.raises(ApiError):
        upload_with_progress(client, audio, state_dir=state_dir)
    assert sorted(sent) == [1, 3]
    assert resume_state_path(audio, state_dir).exists()

    sent_once, sent = True, []
    progress: list[int] = []
    original = ApiClient.send_parts

    def counting(self: ApiClient, track_id: str, path: Path, on_bytes: Any, **kw: Any) -> Any:
        return original(self, track_id, path, lambda n: (progress.append(n), on_bytes(n)), **kw)

    monkeypatch.setattr(ApiClient, "send_parts", counting)
    created = upload_with_progress(client, audio, state_dir=state_dir)
    assert sent == [2]
    assert progress[0] == SIZE - 5 * MIB  # the held parts, counted at once
    assert sum(progress) == SIZE
    assert not resume_state_path(audio, state_dir).exists()

    track = client.wait(created["track_id"], timeout_s=300)
    assert track["status"] == "published", track.get("error")
    # moto names the completion's event ObjectCreated:Put (S3: CompleteMultipartUpload); the
    # consumer admits every ObjectCreated:* alike, and tests/integration admits S3's name
    assert track["source"]["event"].startswith("ObjectCreated:")
    stored = aws.client("s3", settings).get_object(
        Bucket=settings.uploads_bucket, Key=track["source"]["key"], ChecksumMode="ENABLED"
    )
    expected = base64.b64encode(zlib.crc32(audio.read_bytes()).to_bytes(4, "big")).decode()
    assert stored["ChecksumCRC32"] == expected
    assert stored["ContentLength"] == SIZE
