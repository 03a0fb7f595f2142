"""This worker process's copy of the quad index, which the copyright check asks for tempo, pitch
and speed changes (``media.invariant``).

A 5-minute upload asks about half a million distinct quad keys, far too many reads for a
key-value store, so the index is held by each worker host, as Panako and audfprint hold theirs:
- each work's quads and verification peaks are one S3 object (``catalogue/<work>/quads.npz``),
  named on its catalogue record as ``quads_key``;
- a *snapshot* (one generation after another) merges the postings of every work that was
  ready, in key order, with the works it holds, the last number it looked at (``through``) and
  those not yet ready then (``pending``). A host unpacks it once into column files that its
  processes memory-map, so they share one copy through the page cache;
- each check first reads the catalogue's counter item (one request), then loads the works
  numbered since the snapshot, those pending, and those given quads late (``quad_late``: a
  backfill) one by one into a small in-memory index beside it. A work is matchable as soon as
  its record names its quads;
- once ``quad_snapshot_works`` works sit beside the snapshot, the first check to notice claims
  the next generation, built in the bulk lane (``compact_quad_index``) from the last one and
  those works, without the works removed since.

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
_FACTS = ("through", "pending", "held")  # what a snapshot knows besides its postings
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


class Snapshot:
    """A snapshot's postings (memory-mapped) and what it knows of the works."""

    def __init__(self, settings: Settings, record: Mapping[str, Any]) -> None:
        folder = _unpacked(settings, record)
        self.generation = int(record["generation"])
        self.index = invariant.QuadIndex.from_columns(
            {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _COLUMNS}
        )
        facts = {name: np.load(folder / f"{name}.npy") for name in _FACTS}
        self.through = int(facts["through"])
        self.pending = set(facts["pending"].tolist())
        self.held = set(facts["held"].tolist())


def _unpacked(settings: Settings, record: Mapping[str, Any]) -> Path:
    """This host's copy of a snapshot as column files, unpacked on first use (into a folder
    renamed into place whole, so that a process never maps a half-written one)."""
    root = Path(settings.data_dir) / "quad-index"
    folder = root / f"{int(record['generation']):08d}"
    if folder.exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    packed = object_cache(settings).get(
        aws.client("s3", settings), settings.media_bucket, record["key"]
    )
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=root))
    with np.load(packed) as arrays:
        for name in (*_COLUMNS, *_FACTS):
            np.save(partial / f"{name}.npy", arrays[name])
    try:
        os.rename(partial, folder)
    except OSError:  # another process unpacked it first
        shutil.rmtree(partial, ignore_errors=True)
    # Earlier generations: a process still mapping one keeps its pages until it lets go.
    for old in root.iterdir():
        if old.is_dir() and old.name.isdigit() and old.name < folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


class LiveQuadIndex:
    """The snapshot (memory-mapped) and the works added since (in memory), kept current by
    ``refresh``."""

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._seen = 0  # every work numbered up to here was asked about
        self._pending: set[int] = set()
        self._recent: dict[int, invariant.Quads] = {}
        self._recent_index = invariant.QuadIndex([])

    def refresh(self) -> int | None:
        """Catch up with the catalogue. Returns the generation a new snapshot should have when
        enough works sit beside this one, else None."""
        with self._lock:
            state = self._catalogue.index_state()
            record = state.get("quad_snapshot")
            generation = self._snapshot.generation if self._snapshot else 0
            if record and int(record["generation"]) > generation:
                self._adopt(Snapshot(self._settings, record))
                generation = int(record["generation"])
            newest = int(state.get("next_number", 0))
            held = self._snapshot.held if self._snapshot else set()
            late = {int(n) for n in state.get("quad_late", ())} - held - self._recent.keys()
            asked = self._pending | late | set(range(self._seen + 1, newest + 1))
            self._seen = max(self._seen, newest)
            self._load(asked)
            if len(self._recent) >= self._settings.quad_snapshot_works:
                return generation + 1
            return None

    def _adopt(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        # works the snapshot holds leave the in-memory part; those it left pending stay
        self._recent = {n: q for n, q in self._recent.items() if n not in snapshot.held}
        self._pending = (self._pending | snapshot.pending) - self._recent.keys() - snapshot.held
        self._seen = max(self._seen, snapshot.through)
        self._recent_index = invariant.QuadIndex(self._recent.items())
        log.info(
            "quad_snapshot_adopted",
            generation=snapshot.generation,
            postings=len(snapshot.index),
        )

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
        parts = [self._snapshot.index] if self._snapshot else []
        return invariant.merged_lookup([*parts, self._recent_index])(keys)

    def peaks(self, number: int) -> invariant.Peaks | None:
        """A work's verification peaks (None if it can no longer match)."""
        work = self._catalogue.works([number]).get(number)
        if not work or not work.get("quads_key"):
            return None
        stored = load_work(self._settings, work["quads_key"])
        return stored[1] if stored else None


def build_snapshot(
    settings: Settings, catalogue: Catalogue, generation: int
) -> dict[str, Any] | None:
    """Snapshot ``generation``: the last one's postings, less the works removed since, and the
    works numbered since, left pending or given quads late. Stored in S3; returns its record,
    or None if that generation or a later one exists already."""
    state = catalogue.index_state()
    current = state.get("quad_snapshot")
    if current and int(current["generation"]) >= generation:
        return None
    through = int(state.get("next_number", 0))
    late = {int(n) for n in state.get("quad_late", ())}
    parts: list[invariant.QuadIndex] = []
    held: set[int] = set()
    asked = late | set(range(1, through + 1))
    if current:
        last = Snapshot(settings, current)
        asked = late | last.pending | set(range(last.through + 1, through + 1))
        works = np.asarray(last.index.postings.works)
        standing = catalogue.works(last.held, any_status=True)
        held = {n for n in last.held if work_state(standing.get(n)) != "gone"}
        keep = np.isin(works, sorted(held))
        parts.append(
            invariant.QuadIndex.from_columns(
                {name: np.asarray(column)[keep] for name, column in last.index.columns().items()}
            )
        )
    asked -= held
    works_asked = catalogue.works(asked, any_status=True)
    pending: list[int] = []
    fresh: list[tuple[int, invariant.Quads]] = []
    for number in sorted(asked):
        state_of = work_state(works_asked.get(number))
        if state_of == "pending":
            pending.append(number)
        elif state_of == "ready":
            stored = load_work(settings, works_asked[number]["quads_key"])
            if stored is not None:
                fresh.append((number, stored[0]))
    parts.append(invariant.QuadIndex(fresh))
    merged = invariant.merged_index(parts)
    held |= {n for n, _ in fresh}
    key = quad_snapshot_key(generation)
    with tempfile.TemporaryDirectory() as scratch:
        packed = Path(scratch) / "snapshot.npz"
        columns: dict[str, Any] = {
            **merged.columns(),
            "through": np.array(through),
            "pending": np.array(pending, np.int64),
            "held": np.array(sorted(held), np.int64),
        }
        np.savez(packed, **columns)  # uncompressed: hosts unpack it column by column
        aws.client("s3", settings).upload_file(str(packed), settings.media_bucket, key)
    record = {"generation": generation, "key": key, "through": through, "postings": len(merged)}
    if not catalogue.record_quad_snapshot(record):
        return None
    # late works it holds, or that will never be ready, need no more asking
    settled = {n for n in late if n in held or work_state(works_asked.get(n)) == "gone"}
    catalogue.clear_quads_late(settled)
    return record
