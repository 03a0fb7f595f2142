"""From an S3 event to a running workflow, exactly once per uploaded object.

The event is checked against the track the API recorded when it issued the presigned upload:
same bucket, the exact key, the owner the key names, a size within the limit. Then one
conditional write moves the track from ``awaiting_upload`` to ``queued``; only the writer that
wins it launches the workflow, so duplicate events (S3 delivers at least once) start nothing.

That write pins the object: its version id and ETag (``trackflow.consumer.pinning``), which
every step reads and nothing else. A presigned POST can be used again until it expires; an
event for another object under an admitted key starts nothing and changes nothing but a note
on the record (``source.ignored_versions``).

Admission sits above the Celery shell (``trackflow.tasks.workflow``) and imports it; nothing in
the tasks' core imports the consumer back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from trackflow.adapters import aws
from trackflow.adapters.state.catalogue import WorkStatus
from trackflow.adapters.state.dynamo import now_iso, parse_iso
from trackflow.adapters.state.tracks import TrackStore
from trackflow.consumer.events import ObjectCreated, PoisonMessage
from trackflow.consumer.pinning import ObjectGone, Pin, pin_event, same_object
from trackflow.domain.keys import parse_catalogue_key, parse_upload_key
from trackflow.domain.track import Status
from trackflow.logs import get_logger
from trackflow.pipeline.flow import FIRST_STAGE, Move, allowed_from
from trackflow.settings import Settings
from trackflow.tasks.catalogue import catalogue_store, fingerprint_work
from trackflow.tasks.runtime import fail_track
from trackflow.tasks.workflow import launch_stage, move

__all__ = ["Admission", "Outcome", "admit"]

log = get_logger(__name__)

# A track queued this long ago whose launch was never confirmed had its consumer die in between.
RELAUNCH_AFTER = timedelta(seconds=30)


class Outcome(StrEnum):
    LAUNCHED = "launched"
    DUPLICATE = "duplicate"  # the object was admitted before: nothing to do
    IGNORED = "ignored"  # another object under an admitted key: noted on the record, not run
    REFUSED = "refused"  # a real upload that breaks the rules: the track failed, visibly


@dataclass(frozen=True)
class Admission:
    outcome: Outcome
    track_id: str
    reason: str = ""


def _refuse(store: TrackStore, track_id: str, code: str, message: str) -> Admission:
    track = store.get(track_id)
    if track:
        fail_track(track, None, {"code": code, "message": message})
    return Admission(Outcome.REFUSED, track_id, message)


def _pin(event: ObjectCreated, settings: Settings) -> Pin:
    try:
        return pin_event(aws.client("s3", settings), event)
    except ObjectGone as gone:  # no retry brings it back; the sweeper ends the track later
        raise PoisonMessage(str(gone)) from gone


def admit_reference(event: ObjectCreated, work_id: str, settings: Settings) -> Admission:
    """A rights holder's reference recording arrived: fingerprint it (the version this event
    announced), once."""
    catalogue = catalogue_store(settings)
    work = catalogue.get(work_id)
    if work is None or work.get("upload", {}).get("key") != event.key:
        raise PoisonMessage("no catalogue work was promised an upload at this key")
    if work.get("status") != WorkStatus.AWAITING_UPLOAD:
        if not same_object(event, work.get("source") or {}):
            log.warning("work_upload_ignored", work_id=work_id, etag=event.etag)
            return Admission(Outcome.IGNORED, work_id, "another object under an admitted key")
        return Admission(Outcome.DUPLICATE, work_id)
    if event.size > settings.max_upload_bytes:
        catalogue.update(
            work_id,
            expect_status=[WorkStatus.AWAITING_UPLOAD],
            status=WorkStatus.FAILED,
            error={"code": "too_large", "message": "the file is over the limit"},
        )
        return Admission(Outcome.REFUSED, work_id, "too large")
    # the version fingerprint_work reads: the work's presigned POST too can be used again
    source = {
        "bucket": event.bucket,
        "key": event.key,
        "size": event.size,
        **_pin(event, settings).record(),
    }
    if (
        catalogue.update(
            work_id,
            expect_status=[WorkStatus.AWAITING_UPLOAD],
            status=WorkStatus.FINGERPRINTING,
            source=source,
        )
        is None
    ):  # another consumer admitted it meanwhile: this event's object, or another one
        admitted = (catalogue.get(work_id) or {}).get("source") or {}
        if not same_object(event, admitted):
            return Admission(Outcome.IGNORED, work_id, "another object under an admitted key")
        return Admission(Outcome.DUPLICATE, work_id)
    fingerprint_work.delay(work_id)
    return Admission(Outcome.LAUNCHED, work_id, "reference work")


def admit(event: ObjectCreated, settings: Settings, store: TrackStore) -> Admission:
    """Check the event against its track and launch the workflow if this event is the first."""
    if event.bucket != settings.uploads_bucket:
        raise PoisonMessage(f"event for bucket {event.bucket}, not the uploads bucket")
    work_id = parse_catalogue_key(event.key, settings.uploads_prefix)
    if work_id:
        return admit_reference(event, work_id, settings)
    key = parse_upload_key(event.key, settings.uploads_prefix)
    if key is None:
        raise PoisonMessage("the key is outside the uploads prefix or not one the API issues")
    track = store.get(key.track_id)
    if track is None or track["owner"] != key.owner or track["upload"]["key"] != event.key:
        raise PoisonMessage("no track was promised an upload at this key")
    if track["status"] in allowed_from(Move.ADMIT):
        if event.size > settings.max_upload_bytes:
            return _refuse(
                store,
                key.track_id,
                "too_large",
                f"the file is {event.size / 2**20:.0f} MB; the limit is "
                f"{settings.max_upload_bytes / 2**20:.0f} MB",
            )
        declared = track["upload"].get("size")
        if declared is not None and event.size != declared:
            # a multipart upload has no content-length-range: its size is checked here
            return _refuse(
                store,
                key.track_id,
                "size_mismatch",
                f"the file is {event.size} bytes; {declared} were declared",
            )
        pin = _pin(event, settings)
        source = {
            "bucket": event.bucket,
            "key": event.key,
            "size": event.size,
            **pin.record(),
            "event": event.event_name,
            "ignored_versions": {},
        }
        # the one writer that wins the move starts the workflow's first stage
        queued = move(
            store, key.track_id, Move.ADMIT, fields={"source": source, "queued_at": now_iso()}
        )
        if queued is not None:
            log.info("workflow_launched", track_id=key.track_id, version_id=pin.version_id)
            return Admission(Outcome.LAUNCHED, key.track_id)
        track = store.get(key.track_id) or track
    ignored = "source" in track and not same_object(event, track["source"])
    if ignored:
        _note_ignored(event, settings, store, key.track_id)
    if track["status"] == Status.QUEUED and not track.get("launch") and _stale(track):
        log.warning("relaunching_unconfirmed_workflow", track_id=key.track_id)
        launch_stage(store, track, FIRST_STAGE, force=True)  # its messages never arrived
        return Admission(Outcome.LAUNCHED, key.track_id, "relaunched")
    if ignored:
        return Admission(Outcome.IGNORED, key.track_id, "another object under an admitted key")
    return Admission(Outcome.DUPLICATE, key.track_id)


def _note_ignored(
    event: ObjectCreated, settings: Settings, store: TrackStore, track_id: str
) -> None:
    """Say on the record that another object arrived under the track's key and is not run."""
    try:
        pin: Pin | None = _pin(event, settings)
    except PoisonMessage:
        pin = None  # gone already: named by its ETag
    etag = pin.etag if pin else (event.etag or "").strip('"')
    version_id = pin.version_id if pin else None
    note = {"version_id": version_id, "etag": etag, "size": event.size, "at": now_iso()}
    if store.note_ignored_version(track_id, version_id or f"etag:{etag}", note):
        log.warning("upload_ignored", track_id=track_id, version_id=version_id, etag=etag)


def _stale(track: dict[str, Any]) -> bool:
    return datetime.now(UTC) - parse_iso(track["queued_at"]) > RELAUNCH_AFTER
