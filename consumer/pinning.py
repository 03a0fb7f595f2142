"""Which object version an S3 event announced: the bytes admission pins for every step to read.

A presigned POST can be used again until it expires, so one key can receive several objects;
the uploads bucket is versioned, and a track is bound to one version of its key. S3 names the
version in the event (``object.versionId``, EventBridge's ``version-id``); when an event lacks
it (moto's notifications carry none, and neither does an event rebuilt from a listing), the
version is found from the object itself:

- the current version, if its ETag is the event's (or the event has none): the usual case, the
  object is still the one announced;
- else the newest version whose ETag is the event's: the announced object has been replaced
  since, and a version with the same ETag holds the same bytes (an ETag is the content's MD5,
  or for a multipart object the MD5 of its parts' MD5s), so which of equal versions is taken
  does not matter;
- else the current version: the announced one is gone (deleted, or the bucket keeps no
  versions), and what stands under the key is what its own event will announce anyway.

The event's sequencer would order two events of one key, but admission needs no order: the
first event to win admission pins its version, and every later object is recorded as ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from trackflow.consumer.events import ObjectCreated
from trackflow.logs import get_logger
from trackflow.tasks.cache import bare_etag

__all__ = ["ObjectGone", "Pin", "pin_event", "same_object"]

log = get_logger(__name__)


class ObjectGone(LookupError):
    """Nothing stands under the key, and no version has the event's ETag."""


@dataclass(frozen=True)
class Pin:
    etag: str  # bare, as S3 events carry it
    version_id: str | None  # None: the bucket keeps no versions; the ETag alone guards then

    def record(self) -> dict[str, Any]:
        return {"etag": self.etag, "version_id": self.version_id}


def _version(value: Any) -> str | None:
    # S3 names the object of an unversioned bucket "null"; reading by ETag is the same there
    return value if isinstance(value, str) and value and value != "null" else None


def pin_event(s3: Any, event: ObjectCreated) -> Pin:
    """The version (and ETag) of the object ``event`` announced; ObjectGone if none is left."""
    if _version(event.version_id) and event.etag:
        return Pin(bare_etag(event.etag), event.version_id)
    if _version(event.version_id):
        named = s3.head_object(Bucket=event.bucket, Key=event.key, VersionId=event.version_id)
        return Pin(bare_etag(named["ETag"]), event.version_id)
    announced = bare_etag(event.etag) if event.etag else None
    head: dict[str, Any] | None
    try:
        head = s3.head_object(Bucket=event.bucket, Key=event.key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        head = None
    if head is not None and (announced is None or bare_etag(head["ETag"]) == announced):
        return Pin(bare_etag(head["ETag"]), _version(head.get("VersionId")))
    if announced is not None:
        for version in _versions_of(s3, event.bucket, event.key):
            if bare_etag(version["ETag"]) == announced:
                return Pin(announced, _version(version.get("VersionId")))
    if head is None:
        raise ObjectGone(f"nothing stands at {event.bucket}/{event.key}")
    log.warning("announced_version_gone", key=event.key, etag=announced)
    return Pin(bare_etag(head["ETag"]), _version(head.get("VersionId")))


def _versions_of(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The versions of exactly ``key``, newest first (a prefix also lists longer keys)."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        found += [v for v in page.get("Versions", []) if v["Key"] == key]
    return found


def same_object(event: ObjectCreated, admitted: dict[str, Any]) -> bool:
    """Whether ``event`` announces the object admission pinned (True when it cannot tell: an
    event that names neither version nor ETag is taken for a duplicate)."""
    version, pinned_version = _version(event.version_id), admitted.get("version_id")
    if version and pinned_version:
        return bool(version == pinned_version)
    if event.etag and admitted.get("etag"):
        return bare_etag(event.etag) == bare_etag(admitted["etag"])
    return True
