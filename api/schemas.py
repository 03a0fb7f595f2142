"""The API's request and response bodies, as the OpenAPI schema names them."""

from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from trackflow.domain.keys import USER_ID

__all__ = [
    "AccountUpdate",
    "CompleteRequest",
    "FeedPage",
    "MultipartPlan",
    "MultipartUploadResponse",
    "PartChecksums",
    "PartUrls",
    "PartsListing",
    "Playback",
    "PresignedPost",
    "ProfileUpdate",
    "ReviewDecision",
    "SearchPage",
    "Session",
    "SessionRequest",
    "TrackList",
    "UploadRequest",
    "UploadResponse",
    "WorkList",
    "WorkRequest",
    "WorkResponse",
    "Workflow",
]


class RequestBody(BaseModel):
    """A request's JSON body: exactly its fields, of exactly their types (no "1" for 1)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class UploadRequest(RequestBody):
    filename: str = Field(min_length=1, max_length=1000, description="the file's name on disk")
    content_type: str = Field(description="an audio MIME type, e.g. audio/mpeg")
    size: int | None = Field(None, ge=0, description="the file's size in bytes, if known")


class PresignedPost(BaseModel):
    url: str
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_at: str


class UploadResponse(BaseModel):
    track_id: str
    upload: PresignedPost
    track: dict[str, Any]


CRC32_BASE64 = r"^[A-Za-z0-9+/]{6}==$"  # four bytes, base64: as S3 spells x-amz-checksum-crc32


class PartUrl(BaseModel):
    number: int
    url: str = Field(description="PUT the part's bytes here, with its x-amz-checksum-crc32")


class MultipartPlan(BaseModel):
    upload_id: str
    key: str
    size: int
    part_size: int = Field(description="every part but the last is exactly this long")
    part_count: int
    parts: list[PartUrl] = Field(
        description="part URLs (none yet: each URL signs its part's CRC32, which the client "
        "sends first to POST /v1/uploads/{track_id}/parts)"
    )
    expires_at: str = Field(description="when the unfinished upload is aborted")


class MultipartUploadResponse(BaseModel):
    track_id: str
    multipart: MultipartPlan
    track: dict[str, Any]


class PartChecksum(RequestBody):
    number: int = Field(ge=1, le=10_000)
    checksum_crc32: str = Field(pattern=CRC32_BASE64, description="the part's CRC32, base64")


class PartChecksums(RequestBody):
    parts: list[PartChecksum] = Field(min_length=1, max_length=1000)


class PartUrls(BaseModel):
    parts: list[PartUrl]
    expires_at: str


class HeldPart(BaseModel):
    number: int
    etag: str
    size: int
    checksum_crc32: str | None = None


class PartsListing(BaseModel):
    upload_id: str
    part_size: int
    part_count: int
    uploaded: list[HeldPart] = Field(description="the parts S3 holds, by number")
    missing: list[int] = Field(description="part numbers still to send")
    uploaded_bytes: int
    expires_at: str


# One completion names every part, and a request body is at most max_request_body_bytes
# (64 KiB): 400 parts of ~130 bytes fit; the API plans no more (api/storage.py plan_parts).
MAX_COMPLETE_PARTS = 400


class CompletedPart(RequestBody):
    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=80)
    checksum_crc32: str | None = Field(None, pattern=CRC32_BASE64)


class CompleteRequest(RequestBody):
    # none: asking again whether an upload completed (when the first answer was lost)
    parts: list[CompletedPart] = Field(max_length=MAX_COMPLETE_PARTS)


class TrackList(BaseModel):
    tracks: list[dict[str, Any]]
    next_cursor: str | None = None


class WorkRequest(RequestBody):
    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="the rights holder")
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str
    size: int | None = Field(None, ge=0)


class WorkResponse(BaseModel):
    work: dict[str, Any]
    upload: PresignedPost


class WorkList(BaseModel):
    works: list[dict[str, Any]]
    next_cursor: str | None = None


class ReviewDecision(RequestBody):
    decision: str = Field(pattern="^(approve|reject)$")
    note: str = Field("", max_length=2000)


class SearchPage(BaseModel):
    hits: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


class FeedPage(BaseModel):
    entries: list[dict[str, Any]]
    next_cursor: str | None = None


class ProfileUpdate(RequestBody):
    email: EmailStr | None = None
    email_opt_out: bool | None = None


class AccountUpdate(RequestBody):
    priority: bool | None = None
    email: EmailStr | None = None
    admin: bool | None = Field(None, description="grant or withdraw administrator rights")


class SessionRequest(RequestBody):
    user: str = Field(pattern=USER_ID.pattern, description="the name to act as (local stacks)")


class Session(BaseModel):
    user: str
    token: str
    expires_in: int


class StreamVariant(BaseModel):
    """One rung of the HLS ladder."""

    name: str
    codec: str = Field(description="aac (AAC-LC) or opus")
    codecs: str = Field(description="the RFC 6381 name the master playlist gives")
    bitrate_kbps: int
    sample_rate: int


class Playback(BaseModel):
    """What a player needs: the track's tags and presigned URLs of its media."""

    track_id: str
    owner: str
    status: str
    title: str
    artist: str
    album: str
    duration_s: float
    artwork: dict[str, str] = Field(description="file name (500.jpg, 500@2x.webp, ...) -> URL")
    peaks: str | None = Field(description="the waveform's audiowaveform JSON")
    renditions: dict[str, str] = Field(description="bitrate in kbps -> MP3 URL")
    hls: str | None = Field(
        description="the HLS master playlist (AAC-LC and Opus in CMAF segments), for this "
        "caller, valid as long as the media URLs plus the track's length"
    )
    stream: list[StreamVariant] = Field(description="the ladder's variants, best first")
    loudness: dict[str, Any] | None = Field(
        description="input and output loudness, and `playback`: integrated loudness, range, "
        "true peak and the gain a player applies to reach each target"
    )
    copyright: dict[str, Any] | None
    expires_at: str


class Workflow(BaseModel):
    stages: list[dict[str, Any]]
