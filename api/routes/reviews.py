"""Copyright review (administrators): tracks held on weak evidence, approved or rejected."""

from typing import Any

from fastapi import APIRouter

from trackflow.api.dependencies import Admin, Tracks
from trackflow.api.errors import ApiError
from trackflow.api.schemas import ReviewDecision, TrackList
from trackflow.domain.keys import TRACK_ID
from trackflow.domain.track import Status, public_record
from trackflow.tasks import control

router = APIRouter()


@router.get("/v1/reviews", response_model=TrackList)
def held_tracks(caller: Admin, tracks: Tracks) -> TrackList:
    """Tracks held for review (weak copyright evidence), oldest first."""
    held = tracks.list_by_status(Status.HELD_FOR_REVIEW)
    return TrackList(tracks=[public_record(t) for t in held])


@router.post("/v1/reviews/{track_id}")
def review(track_id: str, decision: ReviewDecision, caller: Admin) -> dict[str, Any]:
    """Approve (renditions and publication go ahead) or reject (the track is rejected)."""
    act = control.approve if decision.decision == "approve" else control.reject
    track = act(track_id, caller.user_id, decision.note) if TRACK_ID.match(track_id) else None
    if track is None:
        raise ApiError(409, "not_held", "the track is not held for review")
    return public_record(track)
