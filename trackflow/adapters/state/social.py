"""Who follows whom, and the activity feed each follower reads.

Feed entries have deterministic keys (the track's creation time and id), so writing one twice,
as a redelivered fan-out task will, leaves one entry.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from trackflow.adapters.state.dynamo import batches, from_item, now_iso, query_page, to_item

__all__ = ["SocialStore", "decode_cursor", "encode_cursor"]

FEED_ENTRY_TTL_S = 365 * 24 * 3600
_BATCH = 25  # BatchWriteItem's limit


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    # a cursor is a page's start key: attribute names to strings or whole numbers, nothing else
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ValueError("malformed cursor")
    return value


class SocialStore:
    def __init__(self, dynamodb: Any, follows_table: str, feeds_table: str) -> None:
        self._db = dynamodb
        self._follows = follows_table
        self._feeds = feeds_table

    # --- follows ------------------------------------------------------------------------------
    def follow(self, user_id: str, follower_id: str) -> None:
        self._db.put_item(
            TableName=self._follows,
            Item=to_item({"user_id": user_id, "follower_id": follower_id, "since": now_iso()}),
        )

    def unfollow(self, user_id: str, follower_id: str) -> None:
        self._db.delete_item(
            TableName=self._follows, Key=to_item({"user_id": user_id, "follower_id": follower_id})
        )

    def followers(
        self, user_id: str, *, limit: int = 1000, after: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of ``user_id``'s followers (sorted) and the follower to continue after."""
        kwargs: dict[str, Any] = {
            "TableName": self._follows,
            "KeyConditionExpression": "user_id = :u",
            "ExpressionAttributeValues": to_item({":u": user_id}),
            "ProjectionExpression": "follower_id",
            "Limit": limit,
        }
        if after:
            kwargs["ExclusiveStartKey"] = to_item({"user_id": user_id, "follower_id": after})
        response = self._db.query(**kwargs)
        followers = [from_item(i)["follower_id"] for i in response.get("Items", [])]
        more = "LastEvaluatedKey" in response
        return followers, (followers[-1] if more and followers else None)

    def following(self, follower_id: str) -> list[str]:
        response = self._db.query(
            TableName=self._follows,
            IndexName="by_follower",
            KeyConditionExpression="follower_id = :f",
            ExpressionAttributeValues=to_item({":f": follower_id}),
        )
        return [from_item(i)["user_id"] for i in response.get("Items", [])]

    # --- feeds ----------------------------------------------------------------------------------
    @staticmethod
    def entry_key(created_at: str, track_id: str) -> str:
        return f"{created_at}#{track_id}"

    def add_entries(self, followers: Iterable[str], entry: Mapping[str, Any]) -> int:
        """Put ``entry`` into each follower's feed; idempotent. Returns how many were written."""
        expires = int(time.time()) + FEED_ENTRY_TTL_S
        requests = [
            {"PutRequest": {"Item": to_item({**entry, "user_id": f, "expires_at": expires})}}
            for f in followers
        ]
        for batch in batches(requests, _BATCH):
            pending = {self._feeds: batch}
            for attempt in range(8):
                response = self._db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then resend
            else:
                raise RuntimeError("DynamoDB kept throttling feed writes")
        return len(requests)

    def remove_entries(self, followers: Iterable[str], entry_key: str) -> None:
        for follower in followers:
            self._db.delete_item(
                TableName=self._feeds, Key=to_item({"user_id": follower, "entry": entry_key})
            )

    def feed(
        self, user_id: str, *, limit: int = 20, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Newest entries first, and the cursor of the next page."""
        return query_page(
            self._db,
            cursor,
            TableName=self._feeds,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=to_item({":u": user_id}),
            ScanIndexForward=False,
            Limit=limit,
        )
