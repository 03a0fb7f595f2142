"""New tracks: a record awaiting its audio, and the presigned POST that uploads it to S3 (or,
above the multipart threshold, a multipart upload: routes/multipart.py)."""

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from trackflow.adapters.state.dynamo import now_iso
from trackflow.api.dependencies import S3, AppSettings, Caller, Limits, Tracks, Users
from trackflow.api.errors import ErrorResponse
from trackflow.api.limits import quota_for
from trackflow.api.schemas import (
    MAX_COMPLETE_PARTS,
    MultipartPlan,
    MultipartUploadResponse,
    PresignedPost,
    UploadRequest,
    UploadResponse,
)
from trackflow.api.storage import expires_in, plan_parts
from trackflow.domain.keys import safe_filename, upload_key
from trackflow.domain.track import Status, initial_steps, public_record
from trackflow.logs import get_logger
from trackflow.settings import Lane

router = APIRouter()
log = get_logger(__name__)


def _new_track(
    track_id: str,
    owner: str,
    lane: Lane,
    filename: str,
    content_type: str,
    upload: dict[str, Any],
) -> dict[str, Any]:
    now = now_iso()
    return {
        "track_id": track_id,
        "owner": owner,
        "status": str(Status.AWAITING_UPLOAD),
        "lane": str(lane),
        "filename": filename,
        "content_type": content_type,
        "upload": upload,
        "steps": initial_steps(),
        "outputs": {},
        "renditions": {},
        "notifications": {},
        "stages": {},
        "created_at": now,
        "updated_at": now,
    }


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadResponse | MultipartUploadResponse,
    responses={400: {"model": ErrorResponse}, 429: {"model": ErrorResponse}},
)
def create_upload(
    request: UploadRequest,
    caller: Caller,
    settings: AppSettings,
    tracks: Tracks,
    users: Users,
    s3: S3,
    limits: Limits,
) -> UploadResponse | MultipartUploadResponse:
    """Record a new track and return the presigned POST that uploads its audio to S3, or a
    multipart upload for a declared size above the threshold (429 once the caller is over a
    limit: uploads in flight, an hour, a day, bytes a day)."""
    content_type = s3.accepted_type(request.content_type, request.size)
    profile = users.ensure(caller.user_id, email=caller.email)
    limits.upload(
        caller.user_id,
        quota_for(settings, profile, caller.admin),
        # without a declared size the policy lets S3 store up to the limit: that is what counts
        request.size or settings.max_upload_bytes,
        settings.in_flight_window_s,
    )
    track_id = uuid.uuid4().hex
    filename = safe_filename(request.filename)
    key = upload_key(settings.uploads_prefix, caller.user_id, track_id, filename)
    lane = Lane.PRIORITY if profile.get("priority") else Lane.STANDARD
    if request.size and request.size > settings.multipart_threshold_bytes:
        return _create_multipart(
            settings,
            tracks,
            s3,
            caller.user_id,
            lane,
            track_id,
            filename,
            content_type,
            key,
            request.size,
        )
    upload: PresignedPost = s3.upload_form(key, content_type, request.size)
    track = _new_track(
        track_id,
        caller.user_id,
        lane,
        filename,
        content_type,
        {
            "bucket": settings.uploads_bucket,
            "key": key,
            "expires_at": upload.expires_at,
            "max_bytes": upload.max_bytes,  # what the policy lets S3 store
        },
    )
    tracks.create(track)
    log.info("upload_presigned", track_id=track_id, owner=caller.user_id)
    return UploadResponse(track_id=track_id, upload=upload, track=public_record(track))


def _create_multipart(
    settings: AppSettings,
    tracks: Tracks,
    s3: S3,
    owner: str,
    lane: Lane,
    track_id: str,
    filename: str,
    content_type: str,
    key: str,
    size: int,
) -> MultipartUploadResponse:
    """A multipart upload at the track's key, of the declared type, recorded on the track; no
    part URL yet, as each one signs its part's checksum (POST .../parts)."""
    # no more parts than one completion request can name
    plan = plan_parts(size, settings.multipart_part_bytes, MAX_COMPLETE_PARTS)
    upload_id = s3.create_multipart(key, content_type)
    lifetime = timedelta(days=settings.multipart_abort_after_days)
    expires_at = expires_in(int(lifetime.total_seconds()))
    track = _new_track(
        track_id,
        owner,
        lane,
        filename,
        content_type,
        {
            "bucket": settings.uploads_bucket,
            "key": key,
            "expires_at": expires_at,
            "max_bytes": size,
            # no content-length-range in parts: admission holds the object to this size
            "size": size,
            "multipart": {
                "upload_id": upload_id,
                "part_size": plan.part_size,
                "part_count": plan.count,
            },
        },
    )
    tracks.create(track)
    log.info("multipart_created", track_id=track_id, owner=owner, parts=plan.count)
    return MultipartUploadResponse(
        track_id=track_id,
        multipart=MultipartPlan(
            upload_id=upload_id,
            key=key,
            size=size,
            part_size=plan.part_size,
            part_count=plan.count,
            parts=[],
            expires_at=expires_at,
        ),
        track=public_record(track),
    )
