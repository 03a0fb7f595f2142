"""The workflow's Celery shell: it carries out what the engine (``trackflow.pipeline.flow``)
decides, with conditional writes on the track and Celery messages.

Each stage is sent as a group of chains of step messages. Signatures name their task (task names
are a contract with messages already in the queues), so this module needs the app and not the
step tasks, and the step runtime can call it without an import cycle. They carry only the track
id and route to the step's worker group in the track's lane.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import chain, group
from celery.canvas import Signature

from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.tracks import TrackStore
from trackflow.domain.track import STEP_BY_NAME, Stage, lane_of
from trackflow.logs import get_logger
from trackflow.pipeline import flow
from trackflow.pipeline.flow import Decision, Move
from trackflow.settings import Lane, get_settings
from trackflow.tasks import webhooks
from trackflow.tasks.app import app

__all__ = [
    "advance",
    "launch_stage",
    "move",
    "notify_outcome",
    "notify_signature",
    "perform",
    "stage_signature",
]

log = get_logger(__name__)


def _step(name: str, track_id: str, lane: Lane) -> Signature:
    queue = get_settings().queue(STEP_BY_NAME[name].group, lane)
    return app.signature(f"trackflow.{name}", args=(track_id,), immutable=True).set(queue=queue)


def stage_signature(track_id: str, lane: Lane, stage: Stage) -> Signature:
    return group(chain(*(_step(n, track_id, lane) for n in branch)) for branch in stage.branches)


def notify_signature(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """The uploader's email alone: for a track that ended before publication."""
    return _step("notify_uploader", track_id, lane)


def launch_stage(
    store: TrackStore, track: Mapping[str, Any], stage: Stage, *, force: bool = False
) -> bool:
    """Start ``stage`` unless it was started before (``force``: start it again regardless, as
    the sweeper does for a stage whose messages were lost)."""
    track_id = track["track_id"]
    if not force and not store.claim_stage(track_id, stage.name):
        return False
    stage_signature(track_id, lane_of(track), stage).apply_async()
    # only endpoints that asked for progress hear these; each is recorded once
    before = flow.stage_before(stage)
    if before is not None:
        webhooks.emit_progress(track, before.name, "ended")
    webhooks.emit_progress(track, stage.name, "started")
    if stage.name == flow.FIRST_STAGE.name:
        # Admission relaunches a track that stays queued without this mark (its consumer died
        # between the two writes).
        store.mark_launched(track_id)
    log.info("stage_launched", track_id=track_id, stage=stage.name)
    return True


def notify_outcome(track: Mapping[str, Any]) -> None:
    """Send the email step on its own: the track ended before publication would have run it."""
    notify_signature(track["track_id"], lane_of(track)).apply_async()


def perform(store: TrackStore, track: Mapping[str, Any], decision: Decision) -> None:
    """Carry out the engine's decision; each write is conditional, so a decision taken twice
    (a redelivered message) acts once."""
    if decision.publish:
        published = move(store, track["track_id"], Move.PUBLISH, fields={"published_at": now_iso()})
        if published is not None:
            webhooks.emit_progress(published, flow.LAST_STAGE.name, "ended")
            log.info("track_published", track_id=track["track_id"])
    if decision.launch is not None:
        launch_stage(store, track, decision.launch, force=decision.force)
    if decision.notify:
        notify_outcome(track)
    if decision.events:
        # beside the email, decided by the same winner: webhooks hear of the outcome once
        # (tasks/webhooks.py; a conditional write per event, then the I/O lane delivers)
        webhooks.emit(track, decision.events)


def move(
    store: TrackStore,
    track_id: str,
    name: Move,
    fields: Mapping[str | tuple[str, ...], Any] | None = None,
) -> dict[str, Any] | None:
    """Make the transition ``name`` if the track's status allows it, then do what follows it;
    None (and nothing done) if the track was elsewhere."""
    track = store.apply(track_id, name, fields=fields)
    if track is not None:
        perform(store, track, flow.on_moved(name, track))
    return track


def advance(store: TrackStore, track: Mapping[str, Any]) -> None:
    """After a step ended (or was reported again): what the engine says comes next."""
    perform(store, track, flow.on_step_finished(track))
