"""Multipart decisions on plain data: part sizes within S3's limits, what completion needs."""

from __future__ import annotations

import base64
import os
import zlib

import pytest

from trackflow.api.errors import ApiError
from trackflow.api.schemas import MAX_COMPLETE_PARTS
from trackflow.api.storage import MAX_PARTS, MIN_PART_BYTES, PartPlan, check_completion, plan_parts
from trackflow.cli.client import crc32_base64
from trackflow.cli.progress import resume_state_path

MIB = 1024**2


@pytest.mark.parametrize(
    ("size", "preferred", "part_size", "count"),
    [
        (12 * 10**6, 5 * MIB, 5 * MIB, 3),
        (5 * MIB, 5 * MIB, 5 * MIB, 1),
        (5 * MIB + 1, 5 * MIB, 5 * MIB, 2),
        (1024**3, 16 * MIB, 16 * MIB, 64),
        (5 * 1024**3, 16 * MIB, 16 * MIB, 320),
        (100 * 1024**3, 5 * MIB, 11 * MIB, 9310),  # 10,000 parts of 5 MiB hold only 48.8 GiB
        (1, 1, MIN_PART_BYTES, 1),
    ],
)
def test_part_size_keeps_within_s3_limits(size: int, preferred: int, part_size: int, count: int):
    """Parts are the preferred size unless 10,000 would not hold the file, never under 5 MiB."""
    plan = plan_parts(size, preferred)
    assert (plan.part_size, plan.count) == (part_size, count)
    assert plan.count <= MAX_PARTS and (plan.count - 1) * plan.part_size < size
    assert sum(plan.length(n) for n in range(1, plan.count + 1)) == size


def test_part_size_grows_to_keep_within_a_completion_request():
    """Capped at the parts one completion body can name, a 5 GiB file takes 13 MiB parts."""
    plan = plan_parts(5 * 1024**3, 5 * MIB, MAX_COMPLETE_PARTS)
    assert plan.part_size == 13 * MIB and plan.count <= MAX_COMPLETE_PARTS


def test_no_plan_without_a_size():
    """A multipart upload is planned only for a declared, positive size."""
    with pytest.raises(ValueError):
        plan_parts(0, 5 * MIB)


PLAN = PartPlan(size=12 * MIB, part_size=5 * MIB, count=3)
HELD = {
    1: {"etag": "a", "size": 5 * MIB, "checksum_crc32": None},
    2: {"etag": "b", "size": 5 * MIB, "checksum_crc32": "AAAAAA=="},
    3: {"etag": "c", "size": 2 * MIB, "checksum_crc32": None},
}
CLAIMED = [{"number": n, "etag": f'"{e}"'} for n, e in ((3, "c"), (1, "a"), (2, "b"))]


def test_completion_orders_parts_and_carries_their_checksums():
    """Parts go to S3 ascending, with the ETag S3 holds and the CRC32 S3 or the client knows."""
    parts = check_completion(PLAN, CLAIMED, HELD)
    assert [p["PartNumber"] for p in parts] == [1, 2, 3]
    assert parts[1]["ChecksumCRC32"] == "AAAAAA==" and "ChecksumCRC32" not in parts[0]


@pytest.mark.parametrize(
    ("claimed", "held", "code"),
    [
        (CLAIMED[:2], HELD, "parts_missing"),
        (CLAIMED, {1: HELD[1], 3: HELD[3]}, "parts_missing"),
        ([*CLAIMED, {"number": 4, "etag": "d"}], HELD, "unknown_parts"),
        ([{"number": 1, "etag": "z"}, CLAIMED[0], CLAIMED[2]], HELD, "part_changed"),
        (CLAIMED, {**HELD, 2: {**HELD[2], "size": MIB}}, "part_size"),
    ],
)
def test_completion_refuses_what_s3_would_not_assemble_as_declared(
    claimed: list, held: dict, code: str
):
    """A missing, unknown, replaced or short part is refused in our words before S3 is asked."""
    with pytest.raises(ApiError) as refused:
        check_completion(PLAN, claimed, held)
    assert refused.value.code == code and refused.value.message


def test_crc32_is_spelled_as_s3_spells_it():
    """Four big-endian bytes, base64: S3's x-amz-checksum-crc32."""
    data = os.urandom(1000)
    assert crc32_base64(data) == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert crc32_base64(b"") == "AAAAAA=="


def test_a_changed_file_is_a_new_upload(tmp_path):
    """The resume state is keyed by path, size and mtime: edit the file and it starts over."""
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x" * 10)
    first = resume_state_path(audio, tmp_path)
    assert resume_state_path(audio, tmp_path) == first
    audio.write_bytes(b"y" * 11)
    assert resume_state_path(audio, tmp_path) != first
