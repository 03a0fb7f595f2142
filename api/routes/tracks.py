"""The caller's tracks: their records, deletion and reprocessing."""

from typing import Any

from fastapi import APIRouter

from trackflow.adapters.state.social import encode_cursor
from trackflow.api.dependencies import AppSettings, Caller, Limits, OwnTrack, Tracks, Users
from trackflow.api.errors import ApiError
from trackflow.api.limits import quota_for
from trackflow.api.paging import Cursor, PageSize, own_cursor
from trackflow.api.schemas import TrackList
from trackflow.domain.track import TERMINAL, Status, public_record
from trackflow.tasks import control, recovery

router = APIRouter()


@router.get("/v1/tracks/{track_id}")
def get_track(track: OwnTrack) -> dict[str, Any]:
    """The track's record: status, progress, steps, metadata, outputs, error."""
    return public_record(track)


@router.get("/v1/tracks", response_model=TrackList)
def list_tracks(
    caller: Caller, tracks: Tracks, limit: PageSize = 20, cursor: Cursor = None
) -> TrackList:
    """The caller's tracks, newest first."""
    start = own_cursor(cursor, "owner", caller.user_id, "listing")
    items, last = tracks.list_for_owner(caller.user_id, limit=limit, cursor=start)
    return TrackList(tracks=[public_record(t) for t in items], next_cursor=encode_cursor(last))


@router.delete("/v1/tracks/{track_id}", status_code=202)
def delete_track(track: OwnTrack) -> dict[str, str]:
    """Delete a track that has finished processing: it leaves search, feeds and the
    catalogue at once; its files go in the background."""
    if track["status"] not in (*TERMINAL, Status.AWAITING_UPLOAD):
        raise ApiError(409, "busy", "the track is still being processed; delete it after")
    control.delete_track(track)
    return {"track_id": track["track_id"], "status": "deleting"}


@router.post("/v1/tracks/{track_id}/reprocess", status_code=202)
def reprocess_track(
    track: OwnTrack, caller: Caller, settings: AppSettings, users: Users, limits: Limits
) -> dict[str, Any]:
    """Run the track's workflow again (idempotent: outputs are replaced in place, no email or
    feed entry is sent twice); 429 past the reprocessings a track may have an hour."""
    quota = quota_for(settings, users.get(caller.user_id), caller.admin)
    limits.reprocess(track["track_id"], quota)
    reprocessed = recovery.reprocess(track["track_id"], settings)
    if reprocessed is None:
        raise ApiError(
            409,
            "not_reprocessable",
            "only an uploaded track that is not held for review can be reprocessed",
        )
    return public_record(reprocessed)
