"""What a player needs of a track: its tags and presigned URLs of its media, and the HLS
ladder's playlists, rewritten for one viewer.

A playlist's segments are objects of their own, and a relative URI would reach S3 unsigned, so
the API serves each playlist with every segment's URI signed (presigned S3 GETs, or one
CloudFront policy over the track's ladder). Players send no Authorization header for
playlists: the master playlist's URL carries a playback token for one viewer and one track,
and the variant playlists it names carry the same token.
"""

import gzip
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from trackflow.adapters.search import TrackDocument
from trackflow.api.dependencies import S3, AppSettings, Caller, Tracks, Users
from trackflow.api.errors import ERROR_RESPONSES, ApiError
from trackflow.api.schemas import Playback, StreamVariant
from trackflow.auth import AuthError, mint_playback_token, playback_viewer, standing
from trackflow.domain.keys import (
    PEAKS_ARTIFACT,
    STREAM_MASTER,
    TRACK_ID,
    media_key,
    rendition_artifact,
)
from trackflow.domain.track import Status
from trackflow.media.streaming import rewrite_master_playlist, rewrite_media_playlist

router = APIRouter()

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


def _playable(track_id: str, viewer: str, tracks: Tracks) -> dict[str, Any]:
    """The track if ``viewer`` may play it: their own in any state, anyone's once published
    (feeds and search lead to it); else 404, as for a missing one."""
    track = tracks.get(track_id) if TRACK_ID.match(track_id) else None
    if (
        track is None
        or track.get("deleted_at")  # its files are going
        or (track["owner"] != viewer and track["status"] != Status.PUBLISHED)
    ):
        raise ApiError(404, "not_found", "no such track")
    return track


def _ladder_playlist(track: dict[str, Any], path: str) -> str | None:
    """The stored URI of one of the track's current ladder's playlists, by its path in the
    ladder (``master.m3u8``, ``aac160/index.m3u8``); None if there is no such playlist."""
    playlist: str | None = track.get("stream", {}).get("playlists", {}).get(path)
    return playlist


def _links_live_s(settings: AppSettings, track: dict[str, Any]) -> int:
    """How long playback links live: the media URL expiry, plus the track's length, so that a
    player reaching the last segment of a long track still holds a valid URL."""
    return settings.media_url_expiry_s + int(TrackDocument.from_track(track).duration_s)


@router.get("/v1/tracks/{track_id}/playback", response_model=Playback)
def playback(
    track_id: str,
    caller: Caller,
    settings: AppSettings,
    tracks: Tracks,
    s3: S3,
) -> Playback:
    """Tags and presigned media URLs, the HLS master playlist's URL, and the loudness a player
    needs: the owner's track in any state, anyone's once published."""
    track = _playable(track_id, caller.user_id, tracks)
    outputs: dict[str, str] = track.get("outputs", {})
    document = TrackDocument.from_track(track)
    hls = None
    if _ladder_playlist(track, STREAM_MASTER) is not None:
        token = mint_playback_token(
            settings, caller.user_id, track_id, _links_live_s(settings, track)
        )
        # the public address: behind a load balancer the request's own is the container's
        master = router.url_path_for("stream_playlist", track_id=track_id, path=STREAM_MASTER)
        hls = f"{settings.link_base}{master}?access={token}"
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
        hls=hls,
        stream=[
            StreamVariant(
                name=v["name"],
                codec=v["codec"],
                codecs=v["codecs"],
                bitrate_kbps=v["bitrate_kbps"],
                sample_rate=v["sample_rate"],
            )
            for v in track.get("stream", {}).get("variants", [])
        ]
        if hls
        else [],
        loudness=track.get("loudness"),
        copyright=track.get("copyright"),
        expires_at=s3.media_expires_at(),
    )


@router.get(
    "/v1/tracks/{track_id}/stream/{path:path}",
    response_class=Response,
    responses={200: {"content": {PLAYLIST_TYPE: {}}}, **ERROR_RESPONSES},
)
def stream_playlist(
    track_id: str,
    path: str,
    request: Request,
    access: Annotated[str, Query(description="the playback token from /playback's hls URL")],
    settings: AppSettings,
    tracks: Tracks,
    users: Users,
    s3: S3,
) -> Response:
    """One of the ladder's playlists for the viewer the token names: the master (its variants'
    URIs carry the token on), or a variant's (its segments' URIs signed)."""
    try:
        claims = playback_viewer(settings, access, track_id)
        # a viewer whose tokens were revoked since the link was made plays no more
        viewer = standing(claims, users.get(claims.user_id)).user_id
    except AuthError as error:
        raise ApiError(401, "unauthorized", str(error)) from error
    track = _playable(track_id, viewer, tracks)  # again: a track deleted since plays no more
    uri = _ladder_playlist(track, path)
    if uri is None or not path.endswith(".m3u8"):
        raise ApiError(404, "not_found", "no such playlist")
    text = s3.read_text(uri)
    if path == STREAM_MASTER:
        # relative: a variant playlist resolves beside the master, under this same route
        body = rewrite_master_playlist(text, lambda variant: f"{variant}?access={access}")
    else:
        variant = posixpath.dirname(path)
        ladder = media_key(track["owner"], track_id, f"{track['stream']['folder']}/")
        sign = s3.stream_signer(ladder, _links_live_s(settings, track))
        body = rewrite_media_playlist(
            text, lambda segment: sign(f"{ladder}{posixpath.join(variant, segment)}")
        )
    # (no-store, as on every answer of the API: the URIs are this viewer's)
    headers = {"Vary": "Accept-Encoding"}
    content = body.encode()
    if "gzip" in request.headers.get("accept-encoding", ""):
        # Apple's HLS authoring spec (10.1) asks for gzip: a long track's playlist of signed
        # URIs is tens of KB, most of it the same signature again and again
        content, headers["Content-Encoding"] = gzip.compress(content, compresslevel=6), "gzip"
    return Response(content, media_type=PLAYLIST_TYPE, headers=headers)
