"""The workflow of one upload, drawn as Celery canvas: the product's picture of it.

    extract_metadata -> resize_artwork  ---\
    analyse_waveform -> normalise_audio ----> transcode_128 | 192 | 320 --> index_track
    check_copyright ----------------------/                                  publish_feed
                                                                             notify_uploader

Tags and artwork, and the audio analysis with the copyright check, run side by side; only when
both have passed are the renditions made; then the track is published. Each join is a chord,
the second one the body of the first (a chord inside a chord's header, or a group chained after
a group, is counted unreliably by Celery). Signatures carry only
the track id; each step reads what it needs from the track record and S3, and routes to its
worker group's queue in the track's lane.
"""

from __future__ import annotations

from celery import chain, chord, group
from celery.canvas import Signature
from trackflow.tasks import steps

from trackflow.settings import Lane, get_settings
from trackflow.track import STEP_BY_NAME

__all__ = ["build_workflow", "continue_after_review", "notify_signature"]


def _step(name: str, track_id: str, lane: Lane) -> Signature:
    task = getattr(steps, name)
    return task.si(track_id).set(queue=get_settings().queue(STEP_BY_NAME[name].group, lane))


def build_workflow(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    def s(name: str) -> Signature:
        return _step(name, track_id, lane)

    analysis = group(
        chain(s("extract_metadata"), s("resize_artwork")),
        chain(s("analyse_waveform"), s("normalise_audio")),
        s("check_copyright"),
    )
    return chord(analysis, continue_after_review(track_id, lane))


def continue_after_review(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """Renditions, then publication: the rest of the workflow once the checks have passed (and
    what a reviewer's approval releases)."""

    def s(name: str) -> Signature:
        return _step(name, track_id, lane)

    renditions = group(s("transcode_128"), s("transcode_192"), s("transcode_320"))
    return chord(renditions, group(s("index_track"), s("publish_feed"), s("notify_uploader")))


def notify_signature(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """The uploader's email alone: for a track that failed before publication could start."""
    return _step("notify_uploader", track_id, lane)
