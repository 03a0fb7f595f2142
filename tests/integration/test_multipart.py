"""Multipart uploads through the API on the emulator: part URLs that sign each part's CRC32,
resuming from what S3 holds, completion, abort, the owner alone, and the sweeper's give-up."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from trackflow.adapters import aws
from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.cli.client import crc32_base64
from trackflow.consumer.admission import Outcome, admit
from trackflow.consumer.events import ObjectCreated
from trackflow.settings import Settings
from trackflow.tasks import control
from trackflow.tasks.recovery import sweep
from trackflow.tasks.runtime import track_store

pytestmark = pytest.mark.usefixtures("emulator")

MIB = 1024**2
SIZE = 12 * 10**6  # three parts: 5 MiB, 5 MiB and the rest
# a user of its own: other modules' uploads count against a user's uploads in flight
USER = f"mp-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def small(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"multipart_threshold_bytes": 6 * MIB, "multipart_part_bytes": 5 * MIB}
    )


@pytest.fixture(scope="module")
def api(small: Settings) -> TestClient:
    return TestClient(create_app(small))


@pytest.fixture(scope="module")
def audio() -> bytes:
    return os.urandom(SIZE)


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user)}"}


def _create(api: TestClient, settings: Settings, user: str = USER, size: int = SIZE) -> dict:
    response = api.post(
        "/v1/uploads",
        headers=_auth(settings, user),
        json={"filename": "Long Mix.wav", "content_type": "audio/wav", "size": size},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _part(data: bytes, number: int) -> bytes:
    return data[(number - 1) * 5 * MIB : number * 5 * MIB]


def _send(api: TestClient, settings: Settings, track_id: str, number: int, data: bytes) -> str:
    checksum = crc32_base64(data)
    signed = api.post(
        f"/v1/uploads/{track_id}/parts",
        headers=_auth(settings, USER),
        json={"parts": [{"number": number, "checksum_crc32": checksum}]},
    )
    assert signed.status_code == 200, signed.text
    url = signed.json()["parts"][0]["url"]
    put = httpx.put(url, content=data, headers={"x-amz-checksum-crc32": checksum})
    assert put.status_code == 200, put.text
    return put.headers["ETag"].strip('"')


def test_a_large_file_uploads_in_parts_and_is_admitted_at_its_declared_size(
    api: TestClient, small: Settings, audio: bytes
):
    """Create, send three parts to URLs that sign their CRC32, list, complete: the object is
    the file, at the track's key, and its event is admitted as a POST's would be."""
    created = _create(api, small)
    track_id, plan = created["track_id"], created["multipart"]
    assert "upload" not in created
    assert (plan["part_size"], plan["part_count"], plan["size"]) == (5 * MIB, 3, SIZE)
    assert plan["key"].startswith(f"{small.uploads_prefix}{USER}/{track_id}/")
    checksum = crc32_base64(_part(audio, 1))
    url = api.post(
        f"/v1/uploads/{track_id}/parts",
        headers=_auth(small, USER),
        json={"parts": [{"number": 1, "checksum_crc32": checksum}]},
    ).json()["parts"][0]["url"]
    query = parse_qs(urlsplit(url).query)
    # the checksum and the plan's length are signed: S3 takes no other bytes, and no more
    assert {"x-amz-checksum-crc32", "content-length"} <= set(
        query["X-Amz-SignedHeaders"][0].split(";")
    )
    assert int(query["X-Amz-Expires"][0]) <= small.presign_expiry_s
    etags = [_send(api, small, track_id, n, _part(audio, n)) for n in (1, 2, 3)]
    listed = api.get(f"/v1/uploads/{track_id}/parts", headers=_auth(small, USER)).json()
    assert listed["missing"] == [] and listed["uploaded_bytes"] == SIZE
    done = api.post(
        f"/v1/uploads/{track_id}/complete",
        headers=_auth(small, USER),
        json={"parts": [{"number": n, "etag": e} for n, e in zip((1, 2, 3), etags, strict=True)]},
    )
    assert done.status_code == 200, done.text
    # the answer lost, the client asks again: done, not an error; an abort now comes too late
    again = api.post(
        f"/v1/uploads/{track_id}/complete", headers=_auth(small, USER), json={"parts": []}
    )
    assert again.status_code == 200, again.text
    late = api.delete(f"/v1/uploads/{track_id}", headers=_auth(small, USER))
    assert (late.status_code, late.json()["error"]["code"]) == (409, "upload_finished")
    s3 = aws.client("s3", small)
    stored = s3.get_object(Bucket=small.uploads_bucket, Key=plan["key"])
    assert stored["ContentType"] == "audio/wav"
    assert stored["Body"].read() == audio
    event = ObjectCreated(
        small.uploads_bucket, plan["key"], SIZE, None, "ObjectCreated:CompleteMultipartUpload", None
    )
    assert admit(event, small, track_store(small)).outcome == Outcome.LAUNCHED


def test_an_upload_resumes_from_the_parts_s3_holds(api: TestClient, small: Settings, audio: bytes):
    """After parts 1 and 3, the listing names part 2 as missing and counts the bytes held."""
    track_id = _create(api, small)["track_id"]
    for number in (1, 3):
        _send(api, small, track_id, number, _part(audio, number))
    listed = api.get(f"/v1/uploads/{track_id}/parts", headers=_auth(small, USER)).json()
    assert listed["missing"] == [2]
    assert [p["number"] for p in listed["uploaded"]] == [1, 3]
    assert listed["uploaded_bytes"] == 5 * MIB + (SIZE - 10 * MIB)


def test_completing_with_a_missing_part_fails_cleanly(
    api: TestClient, small: Settings, audio: bytes
):
    """A part S3 does not hold: 409 in our error shape, naming it, and the upload stays open."""
    track_id = _create(api, small)["track_id"]
    etag = _send(api, small, track_id, 1, _part(audio, 1))
    refused = api.post(
        f"/v1/uploads/{track_id}/complete",
        headers=_auth(small, USER),
        json={"parts": [{"number": 1, "etag": etag}, {"number": 2, "etag": "x"}]},
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "parts_missing",
        "message": "parts not uploaded yet: 2, 3",
    }
    listed = api.get(f"/v1/uploads/{track_id}/parts", headers=_auth(small, USER))
    assert listed.json()["missing"] == [2, 3]


def test_a_part_whose_bytes_do_not_match_its_checksum_is_refused(
    api: TestClient, small: Settings, audio: bytes
):
    """S3 checks a part's CRC32 (the emulator as S3 does, moto alone does not): nothing stored."""
    track_id = _create(api, small)["track_id"]
    data = _part(audio, 1)
    checksum = crc32_base64(data)
    url = api.post(
        f"/v1/uploads/{track_id}/parts",
        headers=_auth(small, USER),
        json={"parts": [{"number": 1, "checksum_crc32": checksum}]},
    ).json()["parts"][0]["url"]
    corrupted = bytes([data[0] ^ 1]) + data[1:]
    put = httpx.put(url, content=corrupted, headers={"x-amz-checksum-crc32": checksum})
    assert put.status_code == 400 and "<Code>BadDigest</Code>" in put.text
    listed = api.get(f"/v1/uploads/{track_id}/parts", headers=_auth(small, USER)).json()
    assert listed["uploaded"] == []


def test_only_the_owner_touches_an_upload(api: TestClient, small: Settings):
    """Another user gets 404 on every multipart route, as for a track that does not exist."""
    track_id = _create(api, small)["track_id"]
    mallory = _auth(small, "mallory")
    body = {"parts": [{"number": 1, "checksum_crc32": "AAAAAA=="}]}
    for response in (
        api.get(f"/v1/uploads/{track_id}/parts", headers=mallory),
        api.post(f"/v1/uploads/{track_id}/parts", headers=mallory, json=body),
        api.post(
            f"/v1/uploads/{track_id}/complete",
            headers=mallory,
            json={"parts": [{"number": 1, "etag": "x"}]},
        ),
        api.delete(f"/v1/uploads/{track_id}", headers=mallory),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_abort_drops_the_parts_and_ends_the_track(api: TestClient, small: Settings, audio: bytes):
    """DELETE aborts S3's upload and fails the track; its routes then say the upload is over."""
    created = _create(api, small)
    track_id = created["track_id"]
    _send(api, small, track_id, 1, _part(audio, 1))
    assert api.delete(f"/v1/uploads/{track_id}", headers=_auth(small, USER)).status_code == 204
    uploads = aws.client("s3", small).list_multipart_uploads(
        Bucket=small.uploads_bucket, Prefix=created["multipart"]["key"]
    )
    assert not uploads.get("Uploads")
    track = api.get(f"/v1/tracks/{track_id}", headers=_auth(small, USER)).json()
    assert track["status"] == "failed" and track["error"]["code"] == "upload_aborted"
    again = api.get(f"/v1/uploads/{track_id}/parts", headers=_auth(small, USER))
    assert again.status_code == 409 and again.json()["error"]["code"] == "upload_finished"


def test_deleting_a_track_mid_upload_ends_the_upload(
    api: TestClient, small: Settings, audio: bytes
):
    """A track deleted while its parts come in takes no more, and its files' removal aborts
    the upload: S3 holds no parts of it."""
    created = _create(api, small)
    track_id = created["track_id"]
    _send(api, small, track_id, 1, _part(audio, 1))
    with mock.patch.object(control.delete_track_files, "delay"):
        assert api.delete(f"/v1/tracks/{track_id}", headers=_auth(small, USER)).status_code == 202
    more = api.post(
        f"/v1/uploads/{track_id}/parts",
        headers=_auth(small, USER),
        json={"parts": [{"number": 2, "checksum_crc32": crc32_base64(b"x")}]},
    )
    assert more.status_code == 409 and more.json()["error"]["code"] == "upload_finished"
    with mock.patch.object(control, "get_settings", return_value=small):
        control.delete_track_files.run(track_id)
    uploads = aws.client("s3", small).list_multipart_uploads(
        Bucket=small.uploads_bucket, Prefix=created["multipart"]["key"]
    )
    assert not uploads.get("Uploads")


def test_a_completed_object_of_another_size_is_refused_at_admission(
    api: TestClient, small: Settings
):
    """Parts have no content-length-range: admission holds the object to the declared size."""
    created = _create(api, small)
    event = ObjectCreated(
        small.uploads_bucket,
        created["multipart"]["key"],
        SIZE + 1,
        None,
        "ObjectCreated:CompleteMultipartUpload",
        None,
    )
    assert admit(event, small, track_store(small)).outcome == Outcome.REFUSED
    track = api.get(f"/v1/tracks/{created['track_id']}", headers=_auth(small, USER)).json()
    assert track["error"]["code"] == "size_mismatch"


def test_small_files_keep_the_presigned_post(api: TestClient, small: Settings):
    """At or below the threshold the answer is the presigned POST, as before."""
    created = _create(api, small, size=6 * MIB)
    assert "multipart" not in created and created["upload"]["max_bytes"] == 6 * MIB


def test_the_sweeper_aborts_an_upload_it_gives_up_on(
    api: TestClient, small: Settings, audio: bytes
):
    """Within its day the sweeper leaves a multipart upload be; after it, it aborts it (as the
    lifecycle rule does on AWS) and the track ends upload_not_received."""
    created = _create(api, small)
    track_id, key = created["track_id"], created["multipart"]["key"]
    _send(api, small, track_id, 1, _part(audio, 1))
    assert track_id not in sweep(small, now=datetime.now(UTC) + timedelta(hours=1)).expired
    assert track_id in sweep(small, now=datetime.now(UTC) + timedelta(days=2)).expired
    uploads = aws.client("s3", small).list_multipart_uploads(
        Bucket=small.uploads_bucket, Prefix=key
    )
    assert not uploads.get("Uploads")
    track = api.get(f"/v1/tracks/{track_id}", headers=_auth(small, USER)).json()
    assert track["error"]["code"] == "upload_not_received"
