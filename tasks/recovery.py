"""Nothing stays stuck: the sweeper, reconciliation and reprocessing.

- ``sweep`` finds tracks that stopped moving (a lost message, a consumer killed between two
  writes) and resumes them, or fails them visibly once resuming has not helped; and tracks
  whose upload never arrived;
- ``reconcile`` finds uploaded objects that never produced an event and admits them;
- ``reprocess`` runs a track again from the start; every step is idempotent, so outputs are
  replaced in place and no side effect happens twice.

Each decision is one conditional write, so several sweepers at once do no harm. Recovery sits
above admission (the sweeper admits uploads whose event was lost), which sits above the Celery
shell; none of them imports back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trackflow.adapters import aws
from trackflow.adapters.state.dynamo import now_iso, parse_iso
from trackflow.adapters.state.tracks import TrackStore
from trackflow.consumer.admission import admit
from trackflow.consumer.events import ObjectCreated, PoisonMessage
from trackflow.domain.track import STEP_NAMES, Status, StepStatus, lane_of
from trackflow.logs import get_logger
from trackflow.pipeline import flow
from trackflow.pipeline.flow import NOTHING, Move
from trackflow.settings import Lane, Settings, WorkerGroup, get_settings
from trackflow.tasks.runtime import fail_track, track_store
from trackflow.tasks.workflow import perform

__all__ = ["SweepReport", "lane_idle", "reconcile", "reprocess", "sweep"]

log = get_logger(__name__)

MAX_RESUMES = 3


@dataclass
class SweepReport:
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, list[str]]:
        return {
            "resumed": self.resumed,
            "failed": self.failed,
            "admitted": self.admitted,
            "expired": self.expired,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _upload_event(settings: Settings, key: str) -> ObjectCreated | None:
    """The event S3 would have sent for an object, from the object itself."""
    s3 = aws.client("s3", settings)
    try:
        head = s3.head_object(Bucket=settings.uploads_bucket, Key=key)
    except s3.exceptions.ClientError:
        return None
    return ObjectCreated(
        bucket=settings.uploads_bucket,
        key=key,
        size=head["ContentLength"],
        etag=head.get("ETag"),
        event_name="ObjectCreated:Reconciled",
        event_time=now_iso(),
        version_id=head.get("VersionId"),  # admission pins the version this HEAD saw
    )


def sweep(settings: Settings | None = None, now: datetime | None = None) -> SweepReport:
    """One pass over tracks that should have moved by now."""
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    store = track_store(settings)
    report = SweepReport()
    # A track with a step running may legitimately be quiet for a step's whole time limit; one
    # with nothing running that has not moved for a few minutes lost its messages (a broker
    # that dropped them, a consumer killed between two writes).
    # A quiet track is only stalled when nothing is queued for its lane: under a backlog, a
    # track waiting its turn is quiet too.
    stalled = _iso(now - timedelta(seconds=settings.stalled_after_s))
    stuck = _iso(now - timedelta(seconds=settings.stuck_after_s))
    idle: dict[str, bool] = {}
    for status in (Status.QUEUED, Status.PROCESSING):
        for track in store.list_by_status(status, updated_before=stalled):
            running = any(s.get("status") == StepStatus.RUNNING for s in track["steps"].values())
            lane = lane_of(track)
            if lane not in idle:
                idle[lane] = lane_idle(settings, lane)
            if track["updated_at"] < stuck or (not running and idle[lane]):
                with _one_track(track):
                    _resume_or_fail(store, track, report)
    expired = _iso(now - timedelta(seconds=settings.presign_expiry_s + 300))
    for track in store.list_by_status(Status.AWAITING_UPLOAD, updated_before=expired):
        with _one_track(track):
            # an open multipart upload's parts may take a day to arrive: until it is aborted
            # the sweep only admits what was completed and whose event was lost
            _expire_or_admit(settings, store, track, report, expire=not _multipart_open(track, now))
    if any(report.as_record().values()):
        log.warning("sweep", **report.as_record())
    return report


@contextmanager
def _one_track(track: Mapping[str, Any]) -> Iterator[None]:
    """One track the sweep cannot handle (a record it does not expect) is logged and passed
    over: it must not stop the sweep for every track after it."""
    try:
        yield
    except Exception:
        log.exception("sweep_track_failed", track_id=track.get("track_id"))


def _expire_or_admit(
    settings: Settings,
    store: TrackStore,
    track: Mapping[str, Any],
    report: SweepReport,
    *,
    expire: bool = True,
) -> None:
    event = _upload_event(settings, track["upload"]["key"])
    if event is not None:  # it arrived, but its event was lost
        admit(event, settings, store)
        report.admitted.append(track["track_id"])
        return
    if not expire:
        return
    multipart = track["upload"].get("multipart")
    if multipart:  # what the lifecycle rule does on AWS, which moto stores but never runs
        aws.abort_upload(settings, track["upload"]["key"], multipart["upload_id"])
    fail_track(
        track,
        None,
        {
            "code": "upload_not_received",
            "message": "the file never arrived before its upload link expired; start a new upload",
        },
    )
    report.expired.append(track["track_id"])


def _multipart_open(track: Mapping[str, Any], now: datetime) -> bool:
    """Whether a track's multipart upload is still within the day its parts may take."""
    upload = track["upload"]
    return bool(upload.get("multipart")) and parse_iso(upload["expires_at"]) > now


def lane_idle(settings: Settings, lane: Lane) -> bool:
    """No message waiting, in flight or delayed in any queue of the lane."""
    sqs = aws.client("sqs", settings)
    for group in WorkerGroup:
        url = sqs.get_queue_url(QueueName=settings.queue(group, lane))["QueueUrl"]
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        if any(int(value) for value in counts.values()):
            return False
    return True


def _resume_or_fail(store: Any, track: dict[str, Any], report: SweepReport) -> None:
    resumes = int(track.get("resumes", 0))
    if resumes >= MAX_RESUMES:
        fail_track(
            track,
            None,
            {
                "code": "stuck",
                "message": f"processing stopped and did not "
                f"resume after {resumes} attempts; try reprocessing",
            },
        )
        report.failed.append(track["track_id"])
        return
    # Only one sweeper takes it: the write is conditional on the state it saw.
    claimed = store.claim_resume(track["track_id"], seen_updated_at=track["updated_at"])
    decision = flow.on_stalled(claimed) if claimed else NOTHING
    if decision != NOTHING:
        perform(store, claimed, decision)  # its messages were lost: send them again
        report.resumed.append(track["track_id"])


def reconcile(settings: Settings | None = None) -> list[str]:
    """Admit every uploaded object whose event never came (the track still awaits it).

    Each key's current version is offered, named by its version id, so that admission pins
    what the listing saw; for an admitted key whose current object is not the admitted one,
    admission only notes it on the record."""
    settings = settings or get_settings()
    store = track_store(settings)
    admitted = []
    paginator = aws.client("s3", settings).get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=settings.uploads_bucket, Prefix=settings.uploads_prefix):
        for item in page.get("Versions", []):
            if not item.get("IsLatest"):
                continue
            event = ObjectCreated(
                bucket=settings.uploads_bucket,
                key=item["Key"],
                size=item["Size"],
                etag=item.get("ETag"),
                event_name="ObjectCreated:Reconciled",
                event_time=now_iso(),
                version_id=item.get("VersionId"),
            )
            try:
                outcome = admit(event, settings, store)
            except PoisonMessage:
                continue  # an object no track or work was promised
            if outcome.outcome == "launched":
                admitted.append(outcome.track_id)
    return admitted


def reprocess(track_id: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """Run a track's workflow again from the first step (for a finished or stuck track)."""
    settings = settings or get_settings()
    store = track_store(settings)
    existing = store.get(track_id)
    if existing is None or "source" not in existing:
        return None  # nothing was ever uploaded: there is nothing to run again
    fresh: dict[str | tuple[str, ...], Any] = {
        ("steps", name): {"status": str(StepStatus.PENDING), "attempts": 0} for name in STEP_NAMES
    }
    track = store.apply(
        track_id,
        Move.REPROCESS,
        fields={**fresh, "stages": {}, "reprocessed_at": now_iso(), "resumes": 0},
    )
    if track is None:
        return None
    store.clear(track_id, "error", "finished_at", "published_at")
    perform(store, track, flow.on_moved(Move.REPROCESS, track))  # the first stage starts
    return store.get(track_id)
