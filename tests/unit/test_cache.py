"""The workers' local object cache keeps to its budget, dropping the least recently used."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from trackflow.tasks.cache import ObjectCache


def _adopt(cache: ObjectCache, folder: Path, number: int, size: int) -> None:
    source = folder / f"{number}.bin"
    source.write_bytes(b"x" * size)
    os.utime(source, ns=(number * 10**9, number * 10**9))  # ages apart beyond the clock's grain
    cache.adopt(source, "bucket", f"key-{number}", f'"etag-{number}"')


def _entries(cache: ObjectCache) -> list[Path]:
    return sorted(cache.root.iterdir())


def test_the_oldest_entries_go_when_the_cache_outgrows_its_budget(tmp_path: Path):
    cache = ObjectCache(tmp_path / "cache", max_bytes=10_000)
    for number in range(1, 31):
        _adopt(cache, tmp_path, number, 1000)

    kept = _entries(cache)
    assert sum(p.stat().st_size for p in kept) <= 10_000
    assert sorted(int(p.stat().st_mtime) for p in kept) == list(range(21, 31))


def test_the_cache_is_looked_over_once_per_share_of_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    looks = 0
    evict = ObjectCache._evict

    def counted(cache: ObjectCache, keep: Path) -> None:
        nonlocal looks
        looks += 1
        evict(cache, keep)

    monkeypatch.setattr(ObjectCache, "_evict", counted)
    cache = ObjectCache(tmp_path / "cache", max_bytes=32_000)  # looks after each 1,000 bytes
    for number in range(1, 401):
        _adopt(cache, tmp_path, number, 100)
        total = sum(p.stat().st_size for p in _entries(cache))
        assert total <= 32_000 + 1_000

    assert looks == 40  # at the first addition, then at every tenth (each 1,000 bytes added)


class _VersionedS3:
    """A versioned bucket in memory: each put is a new version; GetObject honours ``VersionId``
    and ``If-Match`` as S3 does."""

    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[str, bytes]]] = {}
        self.gets: list[dict[str, str]] = []

    def put(self, key: str, body: bytes) -> tuple[str, str]:
        version = f"v{sum(map(len, self.versions.values())) + 1}"
        self.versions.setdefault(key, []).append((version, body))
        return version, f'"{hashlib.md5(body).hexdigest()}"'

    def _find(self, key: str, version_id: str | None) -> tuple[str, bytes]:
        for version, body in reversed(self.versions[key]):
            if version_id in (None, version):
                return version, body
        raise ClientError({"Error": {"Code": "NoSuchVersion"}}, "GetObject")

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        version, body = self._find(Key, None)
        return {"ETag": f'"{hashlib.md5(body).hexdigest()}"', "VersionId": version}

    def get_object(self, Bucket: str, Key: str, **pinned: str) -> dict[str, Any]:
        self.gets.append(pinned)
        _, body = self._find(Key, pinned.get("VersionId"))
        if "IfMatch" in pinned and pinned["IfMatch"] != f'"{hashlib.md5(body).hexdigest()}"':
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "GetObject")
        return {"Body": StreamingBody(io.BytesIO(body), len(body))}


def test_an_entry_is_keyed_by_version_and_holds_that_version_whatever_is_current(tmp_path: Path):
    """A pinned read gets the pinned version's bytes, even after another object replaced it
    under the same key, and never stores the newer object under the pinned entry."""
    s3 = _VersionedS3()
    version_a, etag_a = s3.put("uploads/u/t/a.mp3", b"A" * 5000)
    version_b, etag_b = s3.put("uploads/u/t/a.mp3", b"B" * 7000)  # the presigned POST, again
    host_1 = ObjectCache(tmp_path / "host-1", max_bytes=1 << 20)
    host_2 = ObjectCache(tmp_path / "host-2", max_bytes=1 << 20)

    for cache in (host_1, host_2):
        path = cache.get(
            s3, "uploads", "uploads/u/t/a.mp3", etag_a.strip('"'), version_id=version_a
        )
        assert path.read_bytes() == b"A" * 5000
    assert s3.gets[0] == {"VersionId": version_a, "IfMatch": etag_a}
    newer = host_1.get(s3, "uploads", "uploads/u/t/a.mp3", etag_b, version_id=version_b)
    assert newer.read_bytes() == b"B" * 7000
    again = host_1.get(s3, "uploads", "uploads/u/t/a.mp3", etag_a, version_id=version_a)
    assert again.read_bytes() == b"A" * 5000 and again != newer
    assert len(s3.gets) == 3  # the pinned entry was read from the cache the second time


def test_an_etag_read_never_stores_another_object_under_that_etag(tmp_path: Path):
    """Without a version (a bucket that keeps none), the ETag is an If-Match: a replaced object
    is refused by S3, not cached under the old ETag's entry."""
    s3 = _VersionedS3()
    _, etag_a = s3.put("k", b"A" * 100)
    s3.put("k", b"B" * 100)
    cache = ObjectCache(tmp_path / "cache", max_bytes=1 << 20)
    with pytest.raises(ClientError) as refused:
        cache.get(s3, "uploads", "k", etag_a)
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert [p for p in cache.root.iterdir() if not p.name.endswith(".lock")] == []


def test_an_unpinned_read_takes_the_current_object_by_its_etag(tmp_path: Path):
    """Asked for the object as it stands, the cache reads the ETag a HEAD saw, under If-Match."""
    s3 = _VersionedS3()
    s3.put("k", b"A" * 100)
    _, etag_b = s3.put("k", b"B" * 100)
    cache = ObjectCache(tmp_path / "cache", max_bytes=1 << 20)
    assert cache.get(s3, "media", "k").read_bytes() == b"B" * 100
    assert s3.gets == [{"IfMatch": etag_b}]
