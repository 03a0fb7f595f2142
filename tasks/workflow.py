"""The workflow of one upload, stage by stage, as Celery canvas.

    checks:       extract_metadata -> resize_artwork
                  analyse_waveform -> normalise_audio        side by side
                  check_copyright
    renditions:   transcode_128 | transcode_192 | transcode_320   (only if the checks passed)
    publication:  index_track | publish_feed | notify_uploader

Each stage is a group of chains. The join between stages is not a Celery chord: a chord's
counter counts completion events, and redeliveries and retried writes made it start bodies
early or never (measured: tracks stuck in processing). Instead, the step that ends a stage
records it in the track, and one conditional write decides who starts the next stage, exactly
once. Signatures carry only the track id, and route to the step's worker group in the track's
lane.
"""

from __future__ import annotations

from typing import Any

from celery import chain, group
from celery.canvas import Signature

from trackflow.adapters.state.tracks import TrackStore
from trackflow.domain.track import ACTIVE, STAGES, STEP_BY_NAME, Stage, first_unfinished_stage
from trackflow.logs import get_logger
from trackflow.settings import Lane, get_settings
from trackflow.tasks import steps

__all__ = ["advance", "build_workflow", "launch_stage", "notify_signature", "stage_signature"]

log = get_logger(__name__)


def _step(name: str, track_id: str, lane: Lane) -> Signature:
    task = getattr(steps, name)
    return task.si(track_id).set(queue=get_settings().queue(STEP_BY_NAME[name].group, lane))


def stage_signature(track_id: str, lane: Lane, stage: Stage) -> Signature:
    return group(chain(*(_step(n, track_id, lane) for n in branch)) for branch in stage.branches)


def build_workflow(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """Where every upload starts: the checks."""
    return stage_signature(track_id, lane, STAGES[0])


def launch_stage(
    store: TrackStore, track: dict[str, Any], stage: Stage, *, force: bool = False
) -> bool:
    """Start ``stage`` unless it was started before (``force``: start it again regardless, as the
    sweeper does for a stage whose messages were lost)."""
    if not force and not store.claim_stage(track["track_id"], stage.name):
        return False
    lane = Lane(track.get("lane", Lane.STANDARD))
    stage_signature(track["track_id"], lane, stage).apply_async()
    log.info("stage_launched", track_id=track["track_id"], stage=stage.name)
    return True


def advance(store: TrackStore, track: dict[str, Any]) -> None:
    """After a step ended: if its stage is over, start the next one (once)."""
    if track["status"] not in ACTIVE:
        return  # ended, or held for review: nothing more runs unless someone releases it
    stage = first_unfinished_stage(track["steps"])
    if stage is not None and stage.name not in track.get("stages", {}):
        launch_stage(store, track, stage)


def notify_signature(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """The uploader's email alone: for a track that ended before publication."""
    return _step("notify_uploader", track_id, lane)
