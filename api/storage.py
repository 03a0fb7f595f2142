"""Presigned access to S3: clients upload straight to S3 and fetch media from it, so that no
audio passes through the API."""

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trackflow.adapters import aws
from trackflow.api.errors import ApiError
from trackflow.api.schemas import PresignedPost
from trackflow.settings import Settings

__all__ = ["PartPlan", "Storage", "check_completion", "plan_parts"]

MAX_PARTS = 10_000  # S3's limit on one multipart upload
MIN_PART_BYTES = 5 * 1024**2  # S3's minimum for every part but the last
MAX_PART_BYTES = 5 * 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class PartPlan:
    """How a file of ``size`` bytes goes up: ``count`` parts of ``part_size`` (the last shorter)."""

    size: int
    part_size: int
    count: int

    def length(self, number: int) -> int:
        """The exact length of part ``number`` (1-based)."""
        return min(self.part_size, self.size - (number - 1) * self.part_size)


def plan_parts(size: int, preferred_part_bytes: int, max_parts: int = MAX_PARTS) -> PartPlan:
    """Parts of the preferred length, or longer (whole MiB) when the file would need more than
    ``max_parts`` (at most S3's 10,000); never below S3's 5 MiB minimum."""
    if size <= 0:
        raise ValueError("a multipart upload needs a size")
    most = min(max_parts, MAX_PARTS)
    part_size = max(preferred_part_bytes, MIN_PART_BYTES, math.ceil(size / most / MIB) * MIB)
    if part_size > MAX_PART_BYTES:
        raise ValueError("the file is over S3's largest object in parts")
    return PartPlan(size, part_size, math.ceil(size / part_size))


def check_completion(
    plan: PartPlan, claimed: Iterable[Mapping[str, Any]], held: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The parts to complete with, in order, once every part of the plan is claimed and S3
    holds each with the claimed ETag and its exact length; ApiError naming what is wrong."""
    by_number = {int(part["number"]): part for part in claimed}
    missing = [n for n in range(1, plan.count + 1) if n not in by_number or n not in held]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ApiError(409, "parts_missing", f"parts not uploaded yet: {shown}")
    extra = sorted(set(by_number) - set(range(1, plan.count + 1)))
    if extra:
        raise ApiError(400, "unknown_parts", f"the upload has {plan.count} parts, not {extra[0]}")
    parts = []
    for number in range(1, plan.count + 1):
        part, stored = by_number[number], held[number]
        if _bare(part["etag"]) != _bare(stored["etag"]):
            raise ApiError(409, "part_changed", f"part {number} is not the one S3 holds")
        if stored["size"] != plan.length(number):
            expected = plan.length(number)
            raise ApiError(
                409, "part_size", f"part {number} is {stored['size']} bytes, not {expected}"
            )
        checksum = part.get("checksum_crc32") or stored.get("checksum_crc32")
        parts.append(
            {"PartNumber": number, "ETag": stored["etag"]}
            | ({"ChecksumCRC32": checksum} if checksum else {})
        )
    return parts


def _bare(etag: str) -> str:
    return etag.strip().strip('"')


@functools.cache
def _rsa_signer(private_key_pem: str) -> Callable[[bytes], bytes]:
    """CloudFront's signature: RSA PKCS#1 v1.5 over SHA-1, as its signed URLs require."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("CloudFront signs with an RSA key")
    return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1())


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

    # --- multipart uploads: the key and type fixed at creation, as a POST policy fixes them ----
    def create_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload whose every part must carry its CRC32 (S3 then checks each
        part's bytes against it); its upload id."""
        answer = self._s3.create_multipart_upload(
            Bucket=self._settings.uploads_bucket,
            Key=key,
            ContentType=content_type,
            ChecksumAlgorithm="CRC32",
        )
        return str(answer["UploadId"])

    def part_url(
        self, key: str, upload_id: str, number: int, length: int, checksum_crc32: str
    ) -> str:
        """A presigned UploadPart that signs the part's length and CRC32: S3 refuses an unsigned
        x-amz-checksum-* header on a presigned URL, so the value is bound in the signature and
        the uploader must send exactly it; the signed Content-Length keeps a part to the plan's
        length, so that no one parks gigabytes under a part number until the upload expires."""
        return str(
            self._s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self._settings.uploads_bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "ContentLength": length,
                    "ChecksumCRC32": checksum_crc32,
                },
                ExpiresIn=self._settings.presign_expiry_s,
            )
        )

    def part_urls_expire_at(self) -> str:
        return expires_in(self._settings.presign_expiry_s)

    def held_parts(self, key: str, upload_id: str) -> dict[int, dict[str, Any]]:
        """The parts S3 holds, by number (every page of ListParts)."""
        held: dict[int, dict[str, Any]] = {}
        marker = 0
        while True:
            page = self._call(
                "list_parts",
                Bucket=self._settings.uploads_bucket,
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
            )
            for part in page.get("Parts", []):
                held[int(part["PartNumber"])] = {
                    "number": int(part["PartNumber"]),
                    "etag": _bare(part["ETag"]),
                    "size": int(part["Size"]),
                    "checksum_crc32": part.get("ChecksumCRC32"),
                }
            if not page.get("IsTruncated"):
                return held
            marker = int(page["NextPartNumberMarker"])

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self._call(
            "complete_multipart_upload",
            Bucket=self._settings.uploads_bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort the upload; one that is already gone is no error (aborting twice is one)."""
        try:
            self._call(
                "abort_multipart_upload",
                Bucket=self._settings.uploads_bucket,
                Key=key,
                UploadId=upload_id,
            )
        except ApiError as error:
            if error.code != "upload_gone":
                raise

    def _call(self, operation: str, **params: Any) -> Any:
        """An S3 call on an upload, its refusals told in our words."""
        try:
            return getattr(self._s3, operation)(**params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchUpload", "404"):
                raise ApiError(
                    409, "upload_gone", "the upload was completed, aborted or has expired"
                ) from error
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "BadDigest"):
                raise ApiError(
                    409, "parts_invalid", f"S3 refused the parts ({code}); list them and resend"
                ) from error
            raise

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

    def uploaded_size(self, key: str) -> int | None:
        """The size of the object at an upload key, or None while there is none."""
        try:
            answer = self._s3.head_object(Bucket=self._settings.uploads_bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return int(answer["ContentLength"])

    def read_text(self, uri: str) -> str:
        """An ``s3://`` artifact's text (a playlist: a few KB)."""
        bucket, key = aws.split_s3_uri(uri)
        try:
            answer = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ApiError(404, "not_found", "no such playlist") from error
            raise
        return str(answer["Body"].read().decode())

    def stream_signer(self, prefix: str, expires_in_s: int) -> Callable[[str], str]:
        """URLs of media-bucket keys under ``prefix`` (a track's ladder), valid ``expires_in_s``:
        through CloudFront when a media domain is set, one signed custom policy covering the
        whole prefix, so every segment's URL carries the same signature; else presigned S3
        GETs, one per key.
        https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-creating-signed-url-custom-policy.html"""
        s = self._settings
        if s.media_cdn_domain:
            if not (s.media_cdn_key_pair_id and s.media_cdn_private_key):
                raise ApiError(503, "playback_unavailable", "streaming is not configured")
            base = f"https://{s.media_cdn_domain}/"
            signer = CloudFrontSigner(s.media_cdn_key_pair_id, _rsa_signer(s.media_cdn_private_key))
            expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
            policy = signer.build_policy(f"{base}{prefix}*", expires)
            query = signer.generate_presigned_url(f"{base}{prefix}", policy=policy).split("?", 1)[1]
            return lambda key: f"{base}{key}?{query}"
        bucket = s.media_bucket
        return lambda key: str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in_s
            )
        )
