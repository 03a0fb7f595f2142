"""Dead-letter queues for ops: how many messages each holds, what they are, and replaying them
into the queue they came from once the cause is fixed."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from trackflow.adapters import aws
from trackflow.settings import DLQ_SUFFIX, Settings

__all__ = ["DeadLetter", "counts", "describe", "peek", "redrive"]


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the source queue
    message_id: str
    receives: int
    summary: str


def _url(settings: Settings, name: str) -> str:
    return aws.client("sqs", settings).get_queue_url(QueueName=name)["QueueUrl"]


def counts(settings: Settings) -> dict[str, int]:
    """Messages waiting in each dead-letter queue, by source queue."""
    sqs = aws.client("sqs", settings)
    result = {}
    for queue in settings.all_queues:
        attributes = sqs.get_queue_attributes(
            QueueUrl=_url(settings, queue + DLQ_SUFFIX),
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        result[queue] = int(attributes["ApproximateNumberOfMessages"])
    return result


def describe(body: str) -> str:
    """A line about a message: the Celery task and its arguments, or the raw event."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
        headers = envelope["headers"]
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        return f"task {headers['task']}{tuple(args)!r}"
    except (ValueError, KeyError, TypeError, IndexError):
        return body[:200].replace("\n", " ")


def peek(settings: Settings, queue: str, limit: int = 10) -> list[DeadLetter]:
    """Look at up to ``limit`` dead letters of ``queue`` without taking them out.

    Each one read stays hidden until the look is over, so the next read brings others rather
    than the same ones again; then all are made visible again at once."""
    sqs = aws.client("sqs", settings)
    url = _url(settings, queue + DLQ_SUFFIX)
    seen: dict[str, DeadLetter] = {}
    receipts: list[str] = []
    try:
        while len(seen) < limit:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=30,
                AttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            receipts += [m["ReceiptHandle"] for m in messages]
            if not fresh:
                break
            for message in fresh:
                seen[message["MessageId"]] = DeadLetter(
                    queue,
                    message["MessageId"],
                    int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                    describe(message["Body"]),
                )
    finally:
        for start in range(0, len(receipts), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for n, handle in enumerate(receipts[start : start + 10])
                ],
            )
    return list(seen.values())[:limit]


def redrive(settings: Settings, queue: str, limit: int | None = None) -> int:
    """Move dead letters back to ``queue``, oldest first; returns how many moved."""
    sqs = aws.client("sqs", settings)
    source, dead = _url(settings, queue), _url(settings, queue + DLQ_SUFFIX)
    moved = 0
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        messages = sqs.receive_message(
            QueueUrl=dead,
            MaxNumberOfMessages=batch,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries: list[dict[str, Any]] = []
        for n, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(n), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sqs.send_message_batch(QueueUrl=source, Entries=entries)
        sqs.delete_message_batch(
            QueueUrl=dead,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )
        moved += len(messages)
    return moved
