"""S3 ObjectCreated notifications as typed records, whatever envelope they came in.

Accepted: S3's own notification (event version 2.x), the same inside an SNS envelope, and the
EventBridge "Object Created" shape. Keys are decoded once, here (S3 URL-encodes them with ``+``
for spaces). ``s3:TestEvent`` parses to nothing. Anything else raises ``PoisonMessage``: it can
never be processed and belongs in the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["ObjectCreated", "PoisonMessage", "parse_message"]

SUPPORTED_MAJOR_VERSION = "2"


class PoisonMessage(ValueError):
    """A message that no amount of retrying will make processable."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # decoded
    size: int
    etag: str | None
    event_name: str
    event_time: str | None
    sequencer: str | None = None
    version_id: str | None = None


def _require(mapping: Any, *path: str) -> Any:
    value = mapping
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            raise PoisonMessage(f"missing {'.'.join(path)}")
        value = value[part]
    return value


def _require_object(mapping: Any, *path: str) -> Mapping[str, Any]:
    value = _require(mapping, *path)
    if not isinstance(value, Mapping):
        raise PoisonMessage(f"{'.'.join(path)} is not an object")
    return value


def _from_s3_record(record: Mapping[str, Any]) -> ObjectCreated | None:
    version = str(record.get("eventVersion", ""))
    if version.split(".")[0] != SUPPORTED_MAJOR_VERSION:
        raise PoisonMessage(f"unsupported S3 event version {version or 'missing'}")
    if _require(record, "eventSource") != "aws:s3":
        raise PoisonMessage("not an S3 event")
    name = str(_require(record, "eventName"))
    if not name.startswith("ObjectCreated:"):
        return None  # removals and restores are not uploads
    s3 = _require_object(record, "s3")
    obj = _require_object(s3, "object")
    size = obj.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise PoisonMessage("object size is not a non-negative integer")
    key = _require(obj, "key")
    bucket = _require(s3, "bucket", "name")
    if not isinstance(key, str) or not isinstance(bucket, str) or not key or not bucket:
        raise PoisonMessage("bucket or key is not a string")
    return ObjectCreated(
        bucket=bucket,
        key=unquote_plus(key),
        size=size,
        etag=obj.get("eTag"),
        event_name=name,
        event_time=record.get("eventTime"),
        sequencer=obj.get("sequencer"),
        version_id=obj.get("versionId"),
    )


def _from_eventbridge(body: Mapping[str, Any]) -> list[ObjectCreated]:
    if body.get("detail-type") != "Object Created":
        return []
    detail = _require_object(body, "detail")
    _require_object(detail, "object")
    key = _require(detail, "object", "key")
    bucket = _require(detail, "bucket", "name")
    size = detail["object"].get("size", 0)
    if not all(isinstance(v, str) and v for v in (key, bucket)) or not isinstance(size, int):
        raise PoisonMessage("malformed EventBridge object")
    return [
        ObjectCreated(
            bucket=bucket,
            key=key,  # EventBridge keys are not URL-encoded
            size=size,
            etag=detail["object"].get("etag"),
            event_name="ObjectCreated:" + str(detail.get("reason", "PutObject")),
            event_time=body.get("time"),
            sequencer=detail["object"].get("sequencer"),
            version_id=detail["object"].get("version-id"),
        )
    ]


def parse_message(body: str | bytes) -> list[ObjectCreated]:
    """The uploads a queue message announces ([] for test events and non-creation events)."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage("the body is not JSON") from exc
    if not isinstance(data, Mapping):
        raise PoisonMessage("the body is not a JSON object")
    if data.get("Type") == "Notification" and "Message" in data:  # SNS envelope
        message = data["Message"]
        if not isinstance(message, str):
            raise PoisonMessage("SNS Message is not a string")
        return parse_message(message)
    if data.get("Event") == "s3:TestEvent":
        return []
    if "detail-type" in data and data.get("source") == "aws.s3":
        return _from_eventbridge(data)
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        raise PoisonMessage("no Records: not an S3 event notification")
    events = []
    for record in records:
        if not isinstance(record, Mapping):
            raise PoisonMessage("a record is not an object")
        event = _from_s3_record(record)
        if event:
            events.append(event)
    return events
