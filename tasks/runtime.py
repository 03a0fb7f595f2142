"""What every step shares: claiming the step, fetching inputs, storing outputs, recording the
outcome, retrying what may succeed later and failing what never will.

A step body is a plain function ``body(ctx) -> StepResult``; the ``step`` decorator turns it into
a Celery task with a stable name, its queue group, time limits below the queue's visibility
timeout, late acknowledgement and a retry policy. Every run is idempotent: a message delivered
twice finds the step done and returns, and every artifact has a deterministic key.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from trackflow.adapters import aws
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.tracks import StepStart, TrackStore
from trackflow.domain.keys import media_key
from trackflow.domain.track import STEP_BY_NAME, STEP_DONE, Status, StepStatus, queued_s
from trackflow.errors import InputRejected, NotReady, TrackflowError, WaitForSlot
from trackflow.logs import bind, get_logger, unbind
from trackflow.media import probe
from trackflow.pipeline import flow
from trackflow.pipeline.flow import Move
from trackflow.settings import Settings, get_settings
from trackflow.tasks.app import app, routed
from trackflow.tasks.cache import ObjectCache
from trackflow.tasks.cores import CoreLeases
from trackflow.tasks.tuning import cpu_seconds
from trackflow.tasks.workflow import advance, perform

__all__ = [
    "StepContext",
    "StepResult",
    "fail_track",
    "object_cache",
    "original_upload",
    "scratch_dir",
    "step",
    "take_turns_at_cores",
    "track_store",
]

log = get_logger(__name__)

# where a fault of the upload itself is credited in the track's error (ctx.gate() checks it)
INPUT_GATE = "input_gate"


@functools.cache
def _stores(settings: Settings, pid: int) -> TrackStore:
    return TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))


def track_store(settings: Settings | None = None) -> TrackStore:
    settings = settings or get_settings()
    return _stores(settings, os.getpid())


@functools.cache
def object_cache(settings: Settings) -> ObjectCache:
    """This host's local copy of S3 objects (shared by its worker processes)."""
    return ObjectCache(Path(settings.data_dir) / "cache", settings.cache_max_bytes)


@dataclass
class StepResult:
    """What a step produced: record fields to set (a tuple is a nested path) and artifacts."""

    fields: dict[str | tuple[str, ...], Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


class StepContext:
    """A step's view of its track: inputs fetched on demand, outputs stored under fixed keys."""

    def __init__(
        self, track: dict[str, Any], step: str, settings: Settings, workdir: Path, task_id: str
    ) -> None:
        self.track = track
        self.step = step
        self.task_id = task_id  # stable across the retries of one message
        self.settings = settings
        self.workdir = workdir
        self._gate: probe.AudioInfo | None = None

    @property
    def track_id(self) -> str:
        return self.track["track_id"]

    def original(self) -> Path:
        """The upload admission pinned, as a local file (downloaded once per worker host).

        Exactly the admitted version, with its ETag as a second guard: a presigned POST can be
        used again until it expires, and whatever lands under the key after admission must
        reach no step, on whichever host it runs. (A track admitted before versions were
        pinned has only its ETag: a replaced object then fails the download, not the check.)"""
        return original_upload(self.track["source"], self.settings)

    def gate(self) -> probe.AudioInfo:
        """The input gate's verdict on the upload: raises InputRejected for bad input."""
        if self._gate is None:
            s = self.settings
            self._gate = probe.inspect_audio(
                self.original(),
                probe.GateLimits(min_duration_s=s.min_duration_s, max_duration_s=s.max_duration_s),
            )
        return self._gate

    def key(self, artifact: str) -> str:
        return media_key(self.track["owner"], self.track_id, artifact)

    def store(self, files: Iterable[tuple[str, Path, str]]) -> dict[str, str]:
        """Upload (artifact name, path, content type) triples concurrently; returns their URIs."""
        bucket = self.settings.media_bucket
        named = [(name, aws.S3Upload(path, self.key(name), ctype)) for name, path, ctype in files]
        etags = aws.put_files(bucket, [u for _, u in named], self.settings)
        cache = object_cache(self.settings)
        for _, upload in named:  # later steps on this host read it without a download
            cache.adopt(upload.path, bucket, upload.key, etags[upload.key])
        return {name: aws.s3_uri(bucket, u.key) for name, u in named}

    def artifact(self, name: str) -> Path:
        """A stored artifact of this track (from an earlier step), as a local file."""
        return object_cache(self.settings).get(
            aws.client("s3", self.settings), self.settings.media_bucket, self.key(name)
        )


def original_upload(source: Mapping[str, Any], settings: Settings) -> Path:
    """The object a ``source`` record (admission's, or a catalogue work's) pins, as a local
    file; InputRejected if that object is gone or is no longer those bytes."""
    try:
        return object_cache(settings).get(
            aws.client("s3", settings),
            source["bucket"],
            source["key"],
            source.get("etag"),
            version_id=source.get("version_id"),
        )
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code not in _PINNED_OBJECT_LOST:
            raise
        # No retry can bring back the admitted bytes: the uploader has to upload again.
        raise InputRejected(
            "the uploaded file is no longer available as it was received; upload it again",
            "upload_unavailable",
            detail=f"{source['bucket']}/{source['key']} version {source.get('version_id')}: {code}",
        ) from error


# What S3 answers a GetObject whose version is gone (404), or whose ETag no longer matches
# (412: an unversioned object replaced after admission).
_PINNED_OBJECT_LOST = frozenset({"404", "NoSuchKey", "NoSuchVersion", "412", "PreconditionFailed"})


class StepTask(Task):
    """Base of all step tasks: late acknowledgement, requeue when the worker dies.

    A step records its own failures; an exception that escapes it means the bookkeeping itself
    failed (DynamoDB out of reach), so the message is not acknowledged: it comes back after the
    visibility timeout, and after maxReceiveCount tries it rests in the dead-letter queue.
    """

    acks_late = True
    acks_on_failure_or_timeout = False
    reject_on_worker_lost = True
    typing = False


RETRYABLE = (TrackflowError, BotoCoreError, ClientError, OSError, TimeoutError)


def _retry_delay(settings: Settings, attempt: int) -> float:
    """Exponential backoff with full jitter, capped below the visibility timeout."""
    return random.uniform(0, min(settings.retry_backoff_max_s, 2 ** min(attempt, 10)))


def step(name: str) -> Callable[[Callable[[StepContext], StepResult]], Task]:
    """Make ``body`` the Celery task ``trackflow.<name>``; it runs in the statuses the workflow
    says, once the steps whose outputs it reads have succeeded."""
    spec = STEP_BY_NAME[name]
    settings = get_settings()
    hard = settings.task_time_limit(spec.group)
    states = flow.runs_when(name)

    def decorate(body: Callable[[StepContext], StepResult]) -> Task:
        @app.task(
            name=routed(f"trackflow.{name}", spec.group),
            base=StepTask,
            bind=True,
            time_limit=hard,
            soft_time_limit=int(hard * 0.9),
            max_retries=settings.step_max_retries,
        )
        def task(self: Task, track_id: str) -> None:
            bind(track_id=track_id, step=name)
            try:
                run_step(self, name, body, track_id, states)
            finally:
                unbind("track_id", "step")

        task.__doc__ = body.__doc__
        return task

    return decorate


def run_step(
    task: Task,
    name: str,
    body: Callable[[StepContext], StepResult],
    track_id: str,
    runs_when: frozenset[Status],
) -> None:
    settings = get_settings()
    store = track_store(settings)
    begun = store.begin_step(track_id, name, runs_when=runs_when)
    if begun.outcome is StepStart.DONE:  # a redelivery: make sure what follows was started
        log.info("step_already_done")
        advance(store, begun.track)
        return
    if begun.outcome is StepStart.SKIP:
        if begun.track["steps"][name]["status"] not in STEP_DONE:
            store.end_step(track_id, name, StepStatus.SKIPPED)
        log.info("step_skipped", track_status=begun.track["status"])
        return
    track = begun.track
    log.info("step_started", attempt=track["steps"][name]["attempts"])
    with scratch_dir(settings, name) as workdir:
        try:
            missing = flow.missing_inputs(track, name)
            if missing:  # a stage resent by the sweeper while the one before still runs
                raise NotReady(f"waiting for {', '.join(missing)}")
            with _core_turn(track, name, settings):
                started_at, cpu_before = now_iso(), cpu_seconds()
                result = body(StepContext(track, name, settings, workdir, task.request.id or ""))
                cpu_s = cpu_seconds() - cpu_before
            done = store.finish_step(
                track_id,
                name,
                started_at=started_at,
                cpu_s=cpu_s,
                fields=result.fields,
                outputs=result.outputs,
            )
            log.info("step_succeeded", duration_s=done["steps"][name].get("duration_s"))
            advance(store, done)
        except InputRejected as error:
            log.warning(
                "step_rejected_input", code=error.code, reason=error.message, detail=error.detail
            )
            # parallel steps may meet the same bad input: the record credits it to the input gate,
            # not to whichever of them failed first
            fail_track(track, name, error.as_record(), credited_to=INPUT_GATE)
        except SoftTimeLimitExceeded:
            log.error("step_timed_out")
            fail_track(
                track, name, {"code": "step_timeout", "message": f"{name} ran past its time limit"}
            )
        except Retry:
            raise
        except WaitForSlot as wait:  # a reserved slot later on: not a failed attempt
            log.info("step_waiting_for_slot", delay_s=round(wait.retry_after_s, 2))
            raise task.retry(
                countdown=wait.retry_after_s, max_retries=task.request.retries + 1
            ) from None
        except RETRYABLE as error:
            _retry_or_fail(task, track, name, error)
        except Exception as error:  # a bug or a failure we did not foresee: bounded retries
            log.exception("step_crashed")
            _retry_or_fail(task, track, name, error)


_core_leases: CoreLeases | None = None


def take_turns_at_cores(settings: Settings, cores: int) -> None:
    """Make this worker's steps take turns at the host's ``cores`` (see ``trackflow.tasks.cores``);
    called before the worker forks its pool, whose processes inherit it."""
    global _core_leases
    _core_leases = CoreLeases(Path(settings.data_dir) / "cores", cores)


@contextmanager
def _core_turn(track: Mapping[str, Any], name: str, settings: Settings) -> Iterator[None]:
    if _core_leases is None:
        yield
        return
    waited = queued_s(track, name)
    queued = waited is None or waited > settings.core_share_within_s
    # a step that waited this long shares a core rather than wait on: most of its time limit
    # stays for its work
    patience = settings.task_time_limit(STEP_BY_NAME[name].group) / 4
    with _core_leases.turn(wait_s=patience if queued else 0.0) as turn:
        if not turn.leased:
            log.info("step_sharing_a_core", queued=queued, waited_s=round(turn.waited_s, 2))
        elif turn.waited_s >= 0.01:
            log.info("step_waited_for_a_core", waited_s=round(turn.waited_s, 2))
        yield


@contextmanager
def scratch_dir(settings: Settings, name: str = "task") -> Iterator[Path]:
    """A private folder for a task's files under the data dir, removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_workdir_root(settings)))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _workdir_root(settings: Settings) -> Path:
    root = Path(settings.data_dir) / "work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _retry_or_fail(task: Task, track: Mapping[str, Any], name: str, error: Exception) -> None:
    settings = get_settings()
    code = error.code if isinstance(error, TrackflowError) else "internal_error"
    # an unforeseen error's own text may name paths or addresses: it goes to the log only
    message = (
        error.message
        if isinstance(error, TrackflowError)
        else "an internal error interrupted this step; it is being looked into"
    )
    if not isinstance(error, TrackflowError):
        log.warning("step_error_detail", error_type=type(error).__name__, detail=str(error))
    attempt = task.request.retries
    store = track_store(settings)
    if attempt < task.max_retries:
        store.end_step(
            track["track_id"],
            name,
            StepStatus.RUNNING,
            {"code": code, "message": message, "retrying": True},
        )
        delay = _retry_delay(settings, attempt + (0 if isinstance(error, NotReady) else 2))
        log.warning(
            "step_retrying", code=code, reason=message, attempt=attempt + 1, delay_s=round(delay, 2)
        )
        raise task.retry(exc=error, countdown=delay)
    log.error("step_failed", code=code, reason=message)
    fail_track(
        track, name, {"code": code, "message": f"gave up after {attempt + 1} tries: {message}"}
    )


def fail_track(
    track: Mapping[str, Any],
    name: str | None,
    error: Mapping[str, Any],
    *,
    credited_to: str | None = None,
) -> None:
    """End the track as failed (at step ``name``, if any) and tell the uploader (once)."""
    store = track_store()
    failed = store.fail(track["track_id"], error, step=name, credited_to=credited_to)
    if failed is None:  # it had already ended: only this step's outcome is news
        if name:
            store.end_step(track["track_id"], name, StepStatus.FAILED, error)
        return
    perform(store, failed, flow.on_moved(Move.FAIL, failed))
