"""The workflow of one upload, drawn as Celery canvas.

    extract_metadata -> resize_artwork ---------------------------------------\\
                                                                                > index_track
    (analyse_waveform -> normalise_audio) | check_copyright                   |  publish_feed
         -> transcode_128 | transcode_192 | transcode_320 -------------------/   notify_uploader

Signatures carry only the track id; each step reads what it needs from the track record and
S3. Steps route to their worker group's queue in the track's lane (standard or priority).
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

    tags_and_artwork = chain(s("extract_metadata"), s("resize_artwork"))
    audio = chain(
        group(chain(s("analyse_waveform"), s("normalise_audio")), s("check_copyright")),
        group(s("transcode_128"), s("transcode_192"), s("transcode_320")),
    )
    publication = group(s("index_track"), s("publish_feed"), s("notify_uploader"))
    return chord(group(tags_and_artwork, audio), publication)


def continue_after_review(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """What is left once a reviewer releases a held track: renditions, then publication."""

    def s(name: str) -> Signature:
        return _step(name, track_id, lane)

    return chord(
        group(s("transcode_128"), s("transcode_192"), s("transcode_320")),
        group(s("index_track"), s("publish_feed"), s("notify_uploader")),
    )


def notify_signature(track_id: str, lane: Lane = Lane.STANDARD) -> Signature:
    """The uploader's email alone: for a track that failed before publication could start."""
    return _step("notify_uploader", track_id, lane)
