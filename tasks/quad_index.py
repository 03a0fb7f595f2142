"""This worker process's copy of the quad index, which the copyright check asks for tempo, pitch
and speed changes (``media.invariant``).

A 5-minute upload asks about half a million distinct quad keys, far too many reads for a
key-value store, so the index is held by each worker host, as Panako and audfprint hold theirs:
- each work's quads and verification peaks are one S3 object (``catalogue/<work>/quads.npz``),
  named on its catalogue record as ``quads_key``;
- a *snapshot* merges the postings of every work numbered up to ``through`` that was ready, in
  key order. A host unpacks it once into column files that its processes memory-map, so they
  share one copy through the page cache;
- each check first reads the catalogue's counter item (one request), then loads the works
  numbered since the snapshot (and those that were not yet ready) one by one into a small
  in-memory index beside it. A work is matchable as soon as its record names its quads;
- once ``quad_snapshot_works`` works sit beside the snapshot, the first check to notice claims
  a new snapshot, built in the bulk lane (``compact_quad_index``) from the last one and those
  works, without the works removed since.

Works removed between snapshots still have postings, but a match is judged only against works
that can match (``Catalogue.works``), so they never count.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from trackflow.adapters import aws
from trackflow.adapters.state.catalogue import MATCHABLE, Catalogue, WorkStatus
from trackflow.domain.keys import quad_snapshot_key
from trackflow.logs import get_logger
from trackflow.media import invariant
from trackflow.settings import Settings
from trackflow.tasks.runtime import object_cache

__all__ = ["LiveQuadIndex", "build_snapshot", "load_work", "work_state"]

log = get_logger(__name__)

_COLUMNS = ("keys", *invariant.Postings._fields)
_FINAL = (WorkStatus.REMOVED, WorkStatus.FAILED)


def work_state(work: Mapping[str, Any] | None) -> str:
    """``ready`` (its quads can be loaded), ``gone`` (never will be: removed, failed, or indexed
    before quads existed) or ``pending`` (not yet: being fingerprinted, or not yet written)."""
    if work is None:
        return "pending"
    if work.get("status") in _FINAL:
        return "gone"
    if work.get("status") in MATCHABLE:
        return "ready" if work.get("quads_key") else "gone"
    return "pending"


def load_work(settings: Settings, key: str) -> tuple[invariant.Quads, invariant.Peaks] | None:
    """A work's quads and peaks through this host's object cache (None if the object is gone:
    its track was deleted)."""
    try:
        path = object_cache(settings).get(aws.client("s3", settings), settings.media_bucket, key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        return None
    return invariant.unpack_work(path.read_bytes())


def _snapshot_columns(settings: Settings, snapshot: Mapping[str, Any]) -> invariant.QuadIndex:
    """A snapshot's columns memory-mapped from this host's copy, unpacked on first use (into a
    folder renamed into place whole, so a process never maps a half-written one)."""
    root = Path(settings.data_dir) / "quad-index"
    folder = root / f"{int(snapshot['through']):08d}"
    if not folder.exists():
        root.mkdir(parents=True, exist_ok=True)
        packed = object_cache(settings).get(
            aws.client("s3", settings), settings.media_bucket, snapshot["key"]
        )
        partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=root))
        with np.load(packed) as arrays:
            for name in _COLUMNS:
                np.save(partial / f"{name}.npy", arrays[name])
        try:
            os.rename(partial, folder)
        except OSError:  # another process unpacked it first
            shutil.rmtree(partial, ignore_errors=True)
        # Earlier snapshots: a process still mapping one keeps its pages until it lets go.
        for old in root.iterdir():
            if old.is_dir() and old.name.isdigit() and old.name < folder.name:
                shutil.rmtree(old, ignore_errors=True)
    return invariant.QuadIndex.from_columns(
        {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _COLUMNS}
    )


class LiveQuadIndex:
    """The snapshot (memory-mapped) and the works numbered since (in memory), kept current by
    ``refresh``."""

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._lock = threading.Lock()
        self._through = 0  # the snapshot's
        self._snapshot: invariant.QuadIndex | None = None
        self._seen = 0  # every work numbered up to here was asked about
        self._pending: set[int] = set()
        self._recent: dict[int, invariant.Quads] = {}
        self._recent_index = invariant.QuadIndex([])

    def refresh(self) -> int | None:
        """Catch up with the catalogue. Returns the work number a new snapshot should reach
        when enough works sit beside this one, else None."""
        with self._lock:
            state = self._catalogue.index_state()
            snapshot = state.get("quad_snapshot")
            if snapshot and int(snapshot["through"]) > self._through:
                self._adopt(snapshot)
            newest = int(state.get("next_number", 0))
            asked = self._pending | set(range(self._seen + 1, newest + 1))
            self._seen = max(self._seen, newest)
            self._load(asked)
            if len(self._recent) >= self._settings.quad_snapshot_works:
                return self._seen
            return None

    def _adopt(self, snapshot: Mapping[str, Any]) -> None:
        self._snapshot = _snapshot_columns(self._settings, snapshot)
        self._through = int(snapshot["through"])
        pending = {int(n) for n in snapshot.get("pending", [])}
        # works the snapshot holds leave the in-memory part; those it left pending stay
        self._recent = {n: q for n, q in self._recent.items() if n > self._through or n in pending}
        self._pending = {n for n in self._pending | pending if n not in self._recent}
        self._seen = max(self._seen, self._through)
        self._recent_index = invariant.QuadIndex(self._recent.items())
        log.info("quad_snapshot_adopted", through=self._through, postings=len(self._snapshot))

    def _load(self, numbers: Iterable[int]) -> None:
        numbers = sorted(numbers)
        if not numbers:
            return
        works = self._catalogue.works(numbers, any_status=True)
        added = False
        for number in numbers:
            work = works.get(number)
            state = work_state(work)
            self._pending.discard(number)
            if state == "pending":
                self._pending.add(number)
            elif state == "ready" and work is not None:
                stored = load_work(self._settings, work["quads_key"])
                if stored is not None:
                    self._recent[number] = stored[0]
                    added = True
        if added:
            self._recent_index = invariant.QuadIndex(self._recent.items())

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, invariant.Postings]:
        parts = [i for i in (self._snapshot, self._recent_index) if i is not None]
        return invariant.merged_lookup(parts)(keys)

    def peaks(self, number: int) -> invariant.Peaks | None:
        """A work's verification peaks (None if it can no longer match)."""
        work = self._catalogue.works([number]).get(number)
        if not work or not work.get("quads_key"):
            return None
        stored = load_work(self._settings, work["quads_key"])
        return stored[1] if stored else None


def build_snapshot(settings: Settings, catalogue: Catalogue, through: int) -> dict[str, Any] | None:
    """A new snapshot through work ``through`` (the last one and the works numbered since or
    left pending, less the works removed), stored in S3; its record, or None if one as recent
    already exists."""
    current = catalogue.index_state().get("quad_snapshot")
    if current and int(current["through"]) >= through:
        return None
    parts: list[invariant.QuadIndex] = []
    asked = set(range(int(current["through"]) + 1 if current else 1, through + 1))
    if current:
        asked |= {int(n) for n in current.get("pending", [])}
        base = _snapshot_columns(settings, current)
        held = np.unique(np.asarray(base.postings.works)).tolist()
        standing = catalogue.works(held, any_status=True)
        gone = [n for n in held if work_state(standing.get(n)) == "gone"]
        keep = ~np.isin(np.asarray(base.postings.works), gone)
        parts.append(
            invariant.QuadIndex.from_columns(
                {name: np.asarray(column)[keep] for name, column in base.columns().items()}
            )
        )
    works = catalogue.works(asked, any_status=True)
    pending: list[int] = []
    fresh: list[tuple[int, invariant.Quads]] = []
    for number in sorted(asked):
        state = work_state(works.get(number))
        if state == "pending":
            pending.append(number)
        elif state == "ready":
            stored = load_work(settings, works[number]["quads_key"])
            if stored is not None:
                fresh.append((number, stored[0]))
    parts.append(invariant.QuadIndex(fresh))
    merged = invariant.merged_index(parts)
    key = quad_snapshot_key(through)
    with tempfile.TemporaryDirectory() as scratch:
        packed = Path(scratch) / "snapshot.npz"
        columns: dict[str, Any] = merged.columns()
        np.savez(packed, **columns)  # uncompressed: hosts unpack it column by column
        aws.client("s3", settings).upload_file(str(packed), settings.media_bucket, key)
    record = {"through": through, "key": key, "pending": pending, "postings": len(merged)}
    return record if catalogue.record_quad_snapshot(record) else None
