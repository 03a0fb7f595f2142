"""The quad index on the emulator: works are matchable as soon as their records name their
quads, snapshots merge them for every host to memory-map, and removed works leave the next
snapshot."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.signal import resample_poly

from trackflow.adapters import aws
from trackflow.adapters.state.catalogue import WorkStatus
from trackflow.domain.keys import catalogue_quads_key
from trackflow.media import invariant as inv
from trackflow.media.samples import synthesise
from trackflow.settings import Settings
from trackflow.tasks.catalogue import catalogue_store
from trackflow.tasks.quad_index import LiveQuadIndex, build_snapshot

pytestmark = pytest.mark.usefixtures("emulator")

RATE = inv.SAMPLE_RATE


def _mono(seed: int) -> np.ndarray:
    return resample_poly(synthesise(20.0, seed=seed).mean(axis=1), 1, 4).astype(np.float32)


OWNER = "quad-index-test"


@pytest.fixture(autouse=True)
def works_removed_after(settings: Settings) -> Iterator[None]:
    """The catalogue is the stack's: works left active would rightly reject later tests'
    uploads of the same music."""
    yield
    catalogue = catalogue_store(settings)
    for work in catalogue.list(owner=OWNER, limit=1000)[0]:
        catalogue.remove(work["work_id"])


def _add_work(settings: Settings, seed: int, status: WorkStatus) -> dict:
    catalogue = catalogue_store(settings)
    work = catalogue.create(title=f"work {seed}", owner=OWNER, status=WorkStatus.FINGERPRINTING)
    key = catalogue_quads_key(work["work_id"])
    aws.client("s3", settings).put_object(
        Bucket=settings.media_bucket, Key=key, Body=inv.pack_work(*inv.reference_quads(_mono(seed)))
    )
    if status is WorkStatus.FINGERPRINTING:
        return work | {"quads_key": key}
    return catalogue.update(work["work_id"], status=status, quads_key=key) or work


def _found(live: LiveQuadIndex, seed: int) -> list[int]:
    upload = inv.analyse_upload(_mono(seed)[RATE * 3 : RATE * 15])
    matches, _ = inv.match_quads(upload, live.lookup, live.peaks)
    return [m.work for m in matches if m.is_confident(inv.InvariantPolicy())]


def test_works_join_at_once_and_snapshots_merge_them_without_removed_ones(
    settings: Settings, tmp_path
):
    settings = settings.model_copy(update={"quad_snapshot_works": 2, "data_dir": tmp_path})
    catalogue = catalogue_store(settings)
    waiting = _add_work(settings, 71001, WorkStatus.FINGERPRINTING)
    first = _add_work(settings, 71002, WorkStatus.ACTIVE)
    second = _add_work(settings, 71003, WorkStatus.INDEXING)
    live = LiveQuadIndex(settings, catalogue)
    due = live.refresh()
    assert due is not None  # two works beside the snapshot: the next generation is due
    assert _found(live, 71002) == [first["number"]]
    assert _found(live, 71001) == []  # still being fingerprinted

    snapshot = build_snapshot(settings, catalogue, due)
    assert snapshot is not None and snapshot["through"] >= second["number"]
    assert build_snapshot(settings, catalogue, due) is None  # asked again: it exists

    # another host starts from the snapshot, memory-mapped
    other = LiveQuadIndex(settings.model_copy(update={"data_dir": tmp_path / "b"}), catalogue)
    assert other.refresh() is None
    assert _found(other, 71003) == [second["number"]]
    # the work it left pending joins once ready
    catalogue.update(waiting["work_id"], status=WorkStatus.ACTIVE, quads_key=waiting["quads_key"])
    assert _found(other, 71001) == []
    other.refresh()
    assert _found(other, 71001) == [waiting["number"]]

    # a work indexed before quads existed is passed over, until a backfill gives it quads
    legacy = _add_work(settings, 71005, WorkStatus.FINGERPRINTING)
    catalogue.update(legacy["work_id"], status=WorkStatus.ACTIVE)
    other.refresh()
    assert _found(other, 71005) == []
    catalogue.mark_quads_late(legacy["number"])
    catalogue.update(legacy["work_id"], quads_key=legacy["quads_key"])
    other.refresh()
    assert _found(other, 71005) == [legacy["number"]]

    # a removed work is not verified (its peaks are not served) and leaves the next snapshot
    catalogue.remove(first["work_id"])
    assert _found(other, 71002) == []
    later = _add_work(settings, 71004, WorkStatus.ACTIVE)
    merged = build_snapshot(settings, catalogue, due + 1)
    assert merged is not None
    packed = (
        aws.client("s3", settings)
        .get_object(Bucket=settings.media_bucket, Key=merged["key"])["Body"]
        .read()
    )
    with np.load(io.BytesIO(packed)) as columns:
        held = set(np.unique(columns["works"]).tolist())
        assert waiting["number"] not in columns["pending"]
    assert {second["number"], waiting["number"], legacy["number"], later["number"]} <= held
    assert first["number"] not in held
    assert legacy["number"] not in catalogue.index_state().get("quad_late", set())
    fresh = LiveQuadIndex(settings.model_copy(update={"data_dir": tmp_path / "c"}), catalogue)
    fresh.refresh()
    assert _found(fresh, 71004) == [later["number"]]
    assert _found(fresh, 71005) == [legacy["number"]]
