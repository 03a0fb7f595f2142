"""A large file's upload in parts: part URLs, what S3 holds (to resume), completion, abort.

Only the track's owner reaches these (``OwnTrack``: another's track answers 404), and only
while the track awaits a multipart upload. The key, the type and the upload id are the ones
recorded when the upload was created; the client names only part numbers and checksums.
"""

from typing import Any

from fastapi import APIRouter, Response

from trackflow.api.dependencies import S3, OwnTrack
from trackflow.api.errors import ERROR_RESPONSES, ApiError
from trackflow.api.schemas import (
    CompleteRequest,
    HeldPart,
    PartChecksums,
    PartsListing,
    PartUrl,
    PartUrls,
)
from trackflow.api.storage import PartPlan, check_completion
from trackflow.domain.track import Status, public_record
from trackflow.logs import get_logger
from trackflow.tasks.runtime import fail_track

router = APIRouter()
log = get_logger(__name__)


def _multipart(track: dict[str, Any]) -> tuple[str, str, PartPlan]:
    """The key, upload id and plan of a track that still awaits its multipart upload."""
    multipart = track["upload"].get("multipart")
    if not multipart:
        raise ApiError(409, "not_multipart", "this track's upload is a presigned POST, not parts")
    if track["status"] != Status.AWAITING_UPLOAD or track.get("deleted_at"):
        raise ApiError(409, "upload_finished", "this track's upload is over; start a new one")
    plan = PartPlan(
        int(track["upload"]["size"]), int(multipart["part_size"]), int(multipart["part_count"])
    )
    return track["upload"]["key"], multipart["upload_id"], plan


@router.get("/v1/uploads/{track_id}/parts", response_model=PartsListing, responses=ERROR_RESPONSES)
def list_parts(track: OwnTrack, s3: S3) -> PartsListing:
    """The parts S3 already holds and the numbers still missing: where to resume from."""
    key, upload_id, plan = _multipart(track)
    held = s3.held_parts(key, upload_id)
    uploaded = [HeldPart(**part) for number, part in sorted(held.items()) if number <= plan.count]
    return PartsListing(
        upload_id=upload_id,
        part_size=plan.part_size,
        part_count=plan.count,
        uploaded=uploaded,
        missing=[n for n in range(1, plan.count + 1) if n not in held],
        uploaded_bytes=sum(part.size for part in uploaded),
        expires_at=track["upload"]["expires_at"],
    )


@router.post("/v1/uploads/{track_id}/parts", response_model=PartUrls, responses=ERROR_RESPONSES)
def part_urls(request: PartChecksums, track: OwnTrack, s3: S3) -> PartUrls:
    """Presigned UploadPart URLs, each signing the CRC32 the client declared for its part (ask
    again for fresh ones: a part sent again replaces the one S3 held)."""
    key, upload_id, plan = _multipart(track)
    beyond = [p.number for p in request.parts if p.number > plan.count]
    if beyond:
        raise ApiError(400, "unknown_parts", f"the upload has {plan.count} parts, not {beyond[0]}")
    return PartUrls(
        parts=[
            PartUrl(
                number=p.number,
                url=s3.part_url(key, upload_id, p.number, plan.length(p.number), p.checksum_crc32),
            )
            for p in request.parts
        ],
        expires_at=s3.part_urls_expire_at(),
    )


@router.post("/v1/uploads/{track_id}/complete", responses=ERROR_RESPONSES)
def complete_upload(request: CompleteRequest, track: OwnTrack, s3: S3) -> dict[str, Any]:
    """Assemble the parts into the track's object; its ObjectCreated event admits it as a POST's
    would (409 naming the parts still missing, or changed, before S3 is asked)."""
    key, upload_id, plan = _multipart(track)
    try:
        held = s3.held_parts(key, upload_id)
    except ApiError as error:
        # asked again after S3 completed it (the first answer was lost): done, not gone
        if error.code == "upload_gone" and s3.uploaded_size(key) == plan.size:
            return public_record(track)
        raise
    parts = check_completion(plan, [p.model_dump() for p in request.parts], held)
    s3.complete_multipart(key, upload_id, parts)
    log.info("multipart_completed", track_id=track["track_id"], parts=plan.count)
    return public_record(track)


@router.delete("/v1/uploads/{track_id}", status_code=204, responses=ERROR_RESPONSES)
def abort_upload(track: OwnTrack, s3: S3) -> Response:
    """Abort the upload: S3 drops the parts it holds, and the track ends failed."""
    key, upload_id, _ = _multipart(track)
    s3.abort_multipart(key, upload_id)
    if s3.uploaded_size(key) is not None:  # completed before the abort came: admission's now
        raise ApiError(409, "upload_finished", "the upload was completed; delete the track")
    fail_track(
        track, None, {"code": "upload_aborted", "message": "the upload was aborted by its owner"}
    )
    log.info("multipart_aborted", track_id=track["track_id"])
    return Response(status_code=204)
