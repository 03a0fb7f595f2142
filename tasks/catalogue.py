"""Catalogue tasks: fingerprint a reference recording, and index or unindex a work's landmarks
in bounded chunks. Published tracks join the catalogue through the same chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from trackflow.adapters import aws
from trackflow.adapters.state.catalogue import (
    MATCHABLE,
    Catalogue,
    WorkStatus,
    chunk_count,
    pack_landmarks,
    unpack_landmarks,
)
from trackflow.domain.keys import (
    NORMALISED_ARTIFACT,
    QUADS_ARTIFACT,
    catalogue_landmarks_key,
    catalogue_quads_key,
    media_key,
)
from trackflow.errors import InputRejected
from trackflow.logs import bind, get_logger
from trackflow.media import fingerprint, invariant, probe, recipes
from trackflow.settings import Lane, Settings, WorkerGroup, get_settings
from trackflow.tasks.app import app, routed
from trackflow.tasks.quad_index import LiveQuadIndex, build_snapshot
from trackflow.tasks.runtime import object_cache, original_upload, scratch_dir, track_store

__all__ = [
    "add_quads",
    "all_landmarks",
    "catalogue_store",
    "compact_quad_index",
    "fingerprint_work",
    "index_work_chunk",
    "indexed_landmarks",
    "quad_index",
    "start_indexing",
]

log = get_logger(__name__)


def catalogue_store(settings: Settings | None = None) -> Catalogue:
    settings = settings or get_settings()
    return Catalogue(
        aws.client("dynamodb", settings, validated=False),  # postings by the thousand
        settings.table("catalogue"),
        settings.table("fingerprints"),
    )


_live: dict[str, LiveQuadIndex] = {}


def quad_index(settings: Settings) -> LiveQuadIndex:
    """This process's quad index, caught up with the catalogue; the first caller to find it
    has outgrown its snapshot sends for a new one."""
    live = _live.get(settings.media_bucket)
    if live is None:
        live = _live[settings.media_bucket] = LiveQuadIndex(settings, catalogue_store(settings))
    due = live.refresh()
    if due is not None and catalogue_store(settings).claim_quad_compaction(due):
        compact_quad_index.apply_async((due,), queue=settings.queue(WorkerGroup.CPU, Lane.BULK))
    return live


def start_indexing(
    work: dict[str, Any], landmarks: str, chunks: int, *, remove: bool = False
) -> None:
    """Send one indexing task per chunk of the work's hashes, in the bulk lane: thousands of
    index writes per work must not hold up any upload's steps (measured in `make bench-e2e`:
    the workflow's I/O steps waited a minute behind them in a shared queue)."""
    queue = get_settings().queue(WorkerGroup.IO, Lane.BULK)
    for chunk in range(chunks):
        index_work_chunk.apply_async(
            (work["work_id"], landmarks, chunk, chunks, remove), queue=queue
        )


def indexed_landmarks(work: Mapping[str, Any], landmarks: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks a work puts in the index: all of them, or the sample its record names (a
    published track's)."""
    return fingerprint.sample_landmarks(*unpack_landmarks(landmarks), work.get("sampling", 1))


def all_landmarks(
    work: Mapping[str, Any] | None, settings: Settings
) -> tuple[np.ndarray, np.ndarray] | None:
    """Every landmark of a work that can still match (None if it is gone or has none stored)."""
    if work is None or not work.get("landmarks_key"):
        return None
    try:
        path = object_cache(settings).get(
            aws.client("s3", settings), settings.media_bucket, work["landmarks_key"]
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        return None  # the work's track was deleted while it was being compared
    return unpack_landmarks(path.read_bytes())


def _retrying(**options: Any) -> dict[str, Any]:
    settings = get_settings()
    return {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (Exception,),
        "dont_autoretry_for": (InputRejected,),
        "max_retries": settings.step_max_retries,
        "retry_backoff": True,
        "retry_backoff_max": settings.retry_backoff_max_s,
        "retry_jitter": True,
        **options,
    }


@app.task(
    name=routed("trackflow.fingerprint_work", WorkerGroup.CPU, Lane.BULK),
    **_retrying(time_limit=get_settings().cpu_task_time_limit_s),
)
def fingerprint_work(self: Any, work_id: str) -> None:
    """Fingerprint an uploaded reference recording, store its landmarks, index them."""
    bind(work_id=work_id)
    settings = get_settings()
    catalogue = catalogue_store(settings)
    work = catalogue.get(work_id)
    if work is None or work["status"] != WorkStatus.FINGERPRINTING:
        log.info("work_not_waiting_for_fingerprints", status=work and work["status"])
        return
    try:
        # the version admission pinned: the work's presigned POST can be used again until it
        # expires, and a later object must not become the reference recording
        path = original_upload(work["source"], settings)
        info = probe.inspect_audio(path, probe.GateLimits(max_duration_s=settings.max_duration_s))
    except InputRejected as error:
        catalogue.update(work_id, status=WorkStatus.FAILED, error=error.as_record())
        log.warning("work_refused", code=error.code)
        return
    with scratch_dir(settings, "fingerprint_work") as scratch:
        prints = recipes.fingerprint_audio(path, info, settings, scratch)
    hashes, times = prints.hashes, prints.times
    s3 = aws.client("s3", settings)
    key = catalogue_landmarks_key(work_id)
    s3.put_object(Bucket=settings.media_bucket, Key=key, Body=pack_landmarks(hashes, times))
    quads_key = catalogue_quads_key(work_id)
    s3.put_object(
        Bucket=settings.media_bucket,
        Key=quads_key,
        Body=invariant.pack_work(prints.quads, prints.peaks),
    )
    chunks = chunk_count(hashes)
    work = catalogue.update(
        work_id,
        expect_status=[WorkStatus.FINGERPRINTING],
        status=WorkStatus.INDEXING,
        landmarks_key=key,
        landmarks=len(hashes),
        quads_key=quads_key,
        quads=len(prints.quads.a_times),
        duration_s=round(info.duration_s, 2),
        chunks=chunks,
    )
    if work:
        start_indexing(work, key, chunks)
        log.info("work_fingerprinted", landmarks=len(hashes), chunks=chunks)


@app.task(
    name=routed("trackflow.index_work_chunk", WorkerGroup.IO, Lane.BULK),
    **_retrying(time_limit=get_settings().io_task_time_limit_s),
)
def index_work_chunk(
    self: Any, work_id: str, landmarks: str, chunk: int, chunks: int, remove: bool = False
) -> None:
    """Add (or delete) one chunk of a work's postings; idempotent."""
    bind(work_id=work_id)
    settings = get_settings()
    catalogue = catalogue_store(settings)
    work = catalogue.get(work_id)
    if work is None:
        return
    if not remove and work["status"] == WorkStatus.REMOVED:
        return  # removed while queued: its postings are being deleted
    path = object_cache(settings).get(aws.client("s3", settings), settings.media_bucket, landmarks)
    hashes, times = indexed_landmarks(work, path.read_bytes())
    if catalogue.index_chunk(work, hashes, times, chunk, chunks, remove=remove):
        log.info("work_indexed", title=work["title"])


@app.task(
    name=routed("trackflow.compact_quad_index", WorkerGroup.CPU, Lane.BULK),
    **_retrying(time_limit=get_settings().cpu_task_time_limit_s),
)
def compact_quad_index(self: Any, generation: int) -> None:
    """Make snapshot ``generation`` of the quad index; idempotent (that generation or a later
    one existing makes it a no-op)."""
    settings = get_settings()
    record = build_snapshot(settings, catalogue_store(settings), generation)
    if record:
        log.info(
            "quad_snapshot_made",
            generation=generation,
            through=record["through"],
            postings=record["postings"],
        )


@app.task(
    name=routed("trackflow.add_quads", WorkerGroup.CPU, Lane.BULK),
    **_retrying(time_limit=get_settings().cpu_task_time_limit_s),
)
def add_quads(self: Any, work_id: str) -> None:
    """Give a work indexed before quads existed its quads (`trackflow backfill-quads`): a
    reference work's from its recording, a published track's from its normalised master (the
    original upload may have expired). Idempotent: a work that has quads is left alone."""
    bind(work_id=work_id)
    settings = get_settings()
    catalogue = catalogue_store(settings)
    work = catalogue.get(work_id)
    if not work or work.get("quads_key") or work["status"] not in MATCHABLE:
        return
    try:
        if work.get("track_id"):
            track = track_store().get(work["track_id"])
            if not track or track.get("deleted_at"):
                return
            source = media_key(track["owner"], track["track_id"], NORMALISED_ARTIFACT)
            path = object_cache(settings).get(
                aws.client("s3", settings), settings.media_bucket, source
            )
            key = media_key(track["owner"], track["track_id"], QUADS_ARTIFACT)
        else:
            path = original_upload(work["source"], settings)
            key = catalogue_quads_key(work_id)
        info = probe.inspect_audio(path, probe.GateLimits(max_duration_s=settings.max_duration_s))
    except InputRejected as error:
        log.warning("quads_not_added", code=error.code)
        return
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        log.warning("quads_not_added", code="recording_gone")  # an original that expired
        return
    with scratch_dir(settings, "add_quads") as scratch:
        prints = recipes.fingerprint_audio(path, info, settings, scratch)
    packed = invariant.pack_work(prints.quads, prints.peaks)
    aws.client("s3", settings).put_object(Bucket=settings.media_bucket, Key=key, Body=packed)
    # noted late before its record names the quads: a host that reads the record in between
    # would pass over the work for good
    catalogue.mark_quads_late(work["number"])
    count = len(prints.quads.a_times)
    catalogue.update(work_id, expect_status=MATCHABLE, quads_key=key, quads=count)
    log.info("quads_added", quads=count)
