"""Presigned access to S3: clients upload straight to S3 and fetch media from it, so that no
audio passes through the API."""

from datetime import UTC, datetime, timedelta
from typing import Any

from trackflow.adapters import aws
from trackflow.api.errors import ApiError
from trackflow.api.schemas import PresignedPost
from trackflow.settings import Settings

__all__ = ["Storage"]


def expires_in(seconds: int) -> str:
    """The moment, ``seconds`` from now, at which a presigned URL stops working (ISO 8601)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


class Storage:
    """The uploads bucket's presigned POSTs and the media's presigned GETs, under the limits
    the settings set (accepted types, size, expiry)."""

    def __init__(self, s3: Any, settings: Settings) -> None:
        self._s3 = s3
        self._settings = settings

    def accepted_type(self, content_type: str, size: int | None) -> str:
        """The declared type, normalised, once the file is one we would take; refused before
        a track or work is recorded, so that nothing waits for an upload S3 would refuse."""
        limit = self._settings.max_upload_bytes
        content_type = content_type.split(";")[0].strip().lower()
        if content_type not in self._settings.audio_content_types:
            raise ApiError(
                400, "unsupported_content_type", f"{content_type!r} is not an audio type we accept"
            )
        if size == 0:
            raise ApiError(400, "empty_file", "the file is empty: there is nothing to upload")
        if size is not None and size > limit:
            raise ApiError(400, "too_large", f"the limit is {limit} bytes")
        return content_type

    def upload_form(self, key: str, content_type: str, size: int | None = None) -> PresignedPost:
        """A presigned POST whose policy pins the key, the type and the size, so that S3 itself
        refuses any other upload: exactly the declared ``size`` when there is one (S3 takes an
        equal minimum and maximum), else anything up to the limit."""
        settings = self._settings
        expires_at = expires_in(settings.presign_expiry_s)
        low, high = (size, size) if size else (1, settings.max_upload_bytes)
        post = self._s3.generate_presigned_post(
            Bucket=settings.uploads_bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", low, high],
            ],
            ExpiresIn=settings.presign_expiry_s,
        )
        return PresignedPost(
            url=post["url"],
            fields=post["fields"],
            key=key,
            max_bytes=high,
            expires_at=expires_at,
        )

    def media_url(self, uri: str) -> str:
        """A presigned GET of an ``s3://`` artifact, for the media URL expiry."""
        bucket, key = aws.split_s3_uri(uri)
        return self._s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=self._settings.media_url_expiry_s,
        )

    def media_expires_at(self) -> str:
        return expires_in(self._settings.media_url_expiry_s)
