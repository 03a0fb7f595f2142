"""The workers' local object cache keeps to its budget, dropping the least recently used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
