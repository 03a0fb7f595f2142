"""A large upload through the CLI's uploader with the connection cut under it: after a few
parts, the fault proxy drops every part upload, and the uploader gives up once its retries
are spent. Run again on the same file, it resumes from what S3 held, and the stored object is
the file, byte for byte (its CRC32 as S3 computed it from the parts)."""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import client_for
from trackflow.adapters import aws
from trackflow.cli.client import ApiClient, ApiError
from trackflow.cli.progress import resume_state_path, upload_with_progress
from trackflow.settings import Settings

FULL = os.environ.get("TRACKFLOW_CHAOS_SCALE") == "full"
MIB = 1024**2

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.usefixtures("stack"),
    pytest.mark.timeout(900),
]


def _large_wav(path: Path, size: int) -> Path:
    """A WAV header and ``size`` bytes of 8 kHz, 8-bit mono noise: hours long, so the input gate
    ends the track at once, after the bytes that matter here arrived."""
    data = size - 44
    header = (
        b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt "
        + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
        + b"data" + data.to_bytes(4, "little")
    )  # fmt: skip
    with path.open("wb") as out:
        out.write(header)
        chunk = os.urandom(MIB)
        for _ in range(data // MIB):
            out.write(chunk)
        out.write(chunk[: data % MIB])
    return path


def test_an_upload_cut_off_resumes_and_stores_the_file_exactly(
    settings: Settings, tmp_path: Path, faults: Callable[..., dict[str, Any]]
):
    size = (1024 if FULL else 300) * MIB + 12_345  # the last part shorter
    path = _large_wav(tmp_path / "long-session.wav", size)
    client = client_for(settings, "chaos-parts")
    state = tmp_path / "state"
    parts = -(-size // settings.multipart_part_bytes)

    # six parts reach S3, then every part upload is cut off: the uploader gives up
    faults(drop=1.0, match="partNumber=", after=6)
    with pytest.raises(ApiError) as stopped:
        upload_with_progress(client, path, state_dir=state)
    assert stopped.value.code == "upload_failed"
    assert resume_state_path(path, state).exists()

    sent: list[int] = []
    put_part = ApiClient._put_part

    def counted(self: ApiClient, track_id: str, number: int, *args: Any) -> str:
        sent.append(number)
        return put_part(self, track_id, number, *args)

    assert faults()["injected"]["drop"] >= parts - 6  # every part after the sixth was cut
    # the same file again, the link back
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ApiClient, "_put_part", counted)
        created = upload_with_progress(client, path, state_dir=state)
    # only what S3 did not hold went again: the six parts that got through stayed
    assert len(sent) == len(set(sent)) == parts - 6
    assert not resume_state_path(path, state).exists()

    track = client.wait(created["track_id"], timeout_s=600)
    assert track["status"] == "failed" and track["error"]["code"] == "too_long"
    # a GET: the emulator gives the whole object's CRC32 there (S3 would give a composite of the
    # parts' checksums, as the upload is not created with a full-object checksum type)
    stored = aws.client("s3", settings).get_object(
        Bucket=settings.uploads_bucket, Key=track["source"]["key"], ChecksumMode="ENABLED"
    )
    stored["Body"].close()
    crc = 0
    with path.open("rb") as handle:
        while block := handle.read(8 * MIB):
            crc = zlib.crc32(block, crc)
    assert stored["ContentLength"] == size
    assert stored["ChecksumCRC32"] == base64.b64encode(crc.to_bytes(4, "big")).decode()
