"""What a player needs of a track: its tags and presigned URLs of its media."""

from fastapi import APIRouter

from trackflow.adapters.search import TrackDocument
from trackflow.api.dependencies import S3, AppSettings, Caller, Tracks
from trackflow.api.errors import ApiError
from trackflow.api.schemas import Playback
from trackflow.domain.keys import PEAKS_ARTIFACT, TRACK_ID, rendition_artifact
from trackflow.domain.track import Status

router = APIRouter()


@router.get("/v1/tracks/{track_id}/playback", response_model=Playback)
def playback(
    track_id: str, caller: Caller, settings: AppSettings, tracks: Tracks, s3: S3
) -> Playback:
    """Tags and presigned media URLs: the owner's track in any state, anyone's once
    published (feeds and search lead to it)."""
    track = tracks.get(track_id) if TRACK_ID.match(track_id) else None
    if track is None or (track["owner"] != caller.user_id and track["status"] != Status.PUBLISHED):
        raise ApiError(404, "not_found", "no such track")
    outputs: dict[str, str] = track.get("outputs", {})
    document = TrackDocument.from_track(track)
    return Playback(
        track_id=track_id,
        owner=track["owner"],
        status=track["status"],
        title=document.title,
        artist=document.artist,
        album=document.album,
        duration_s=document.duration_s,
        artwork={
            name.removeprefix("artwork/"): s3.media_url(uri)
            for name, uri in outputs.items()
            if name.startswith("artwork/")
        },
        peaks=s3.media_url(outputs[PEAKS_ARTIFACT]) if PEAKS_ARTIFACT in outputs else None,
        renditions={
            str(bitrate): s3.media_url(outputs[rendition_artifact(bitrate)])
            for bitrate in settings.rendition_bitrates
            if rendition_artifact(bitrate) in outputs
        },
        loudness=track.get("loudness"),
        copyright=track.get("copyright"),
        expires_at=s3.media_expires_at(),
    )
