"""Operations that steer tracks and works from outside a workflow: a reviewer's decision, a
work taken out of the catalogue. The API calls these; each is one conditional write followed by
the tasks it releases."""

from __future__ import annotations

from typing import Any

from trackflow.tasks.catalogue import catalogue_store, start_indexing
from trackflow.tasks.runtime import track_store
from trackflow.tasks.workflow import continue_after_review, notify_signature

from trackflow.settings import Lane
from trackflow.state.dynamo import now_iso
from trackflow.track import PUBLISH_STEPS, TRANSCODE_STEPS, Status, StepStatus

__all__ = ["approve", "reject", "remove_work"]


def approve(track_id: str, reviewer: str, note: str = "") -> dict[str, Any] | None:
    """Release a held track: renditions and publication run as if the check had passed."""
    again = {
        ("steps", name): {"status": str(StepStatus.PENDING), "attempts": 0}
        for name in (*TRANSCODE_STEPS, *PUBLISH_STEPS)
    }
    track = track_store().transition(
        track_id,
        Status.PROCESSING,
        allowed_from=[Status.HELD_FOR_REVIEW],
        fields={
            **again,
            "review": {"decision": "approved", "by": reviewer, "at": now_iso(), "note": note},
        },
    )
    if track:
        continue_after_review(track_id, Lane(track.get("lane", Lane.STANDARD))).apply_async()
    return track


def reject(track_id: str, reviewer: str, note: str = "") -> dict[str, Any] | None:
    """Confirm the match: the track ends rejected and the uploader is told why."""
    store = track_store()
    held = store.get(track_id)
    if held is None or held["status"] != Status.HELD_FOR_REVIEW:
        return None
    matches = held.get("copyright", {}).get("matches", [])
    work = (
        f"'{matches[0]['title']}' (work {matches[0]['work_id']})" if matches else "a protected work"
    )
    track = store.transition(
        track_id,
        Status.REJECTED,
        allowed_from=[Status.HELD_FOR_REVIEW],
        fields={
            "error": {
                "code": "copyright_match",
                "step": "check_copyright",
                "message": f"a reviewer confirmed that the upload contains {work}"
                + (f": {note}" if note else ""),
            },
            "review": {"decision": "rejected", "by": reviewer, "at": now_iso(), "note": note},
        },
    )
    if track:
        store.skip_pending(track)
        notify_signature(track_id, Lane(track.get("lane", Lane.STANDARD))).apply_async()
    return track


def remove_work(work_id: str) -> dict[str, Any] | None:
    """Take a work out of the catalogue at once; its postings are deleted in the background."""
    catalogue = catalogue_store()
    work = catalogue.remove(work_id)
    if work and work.get("landmarks_key") and work.get("chunks"):
        start_indexing(work, work["landmarks_key"], work["chunks"], remove=True)
    return work
