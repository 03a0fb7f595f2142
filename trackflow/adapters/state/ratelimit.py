"""Rates and quotas shared by every process, kept in DynamoDB's idempotency table.

:class:`RateLimiter` spaces sends (GCRA: one theoretical arrival time): each sender reserves
the next free slot with one conditional write; slots are spaced by 1/rate seconds, so however
many workers send, the account's rate is never exceeded.

:class:`FixedWindows` counts what a user (a track, an address) did in fixed windows: one item
per window, which expires with it. Taking from several windows is one transaction whose every
counter is conditioned on its room, so replicas racing for the last unit cannot both get it.
What to take and whether it fits is decided elsewhere, as a pure function of the counts
(``trackflow.api.limits``); this module only reads and writes them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import from_item, is_condition_failure, to_item

__all__ = ["FixedWindows", "RateLimiter", "Take", "count_recent"]

# a window's item outlives its window a little, so that a reader near the boundary still
# finds it; DynamoDB's TTL deletes it later anyway
_EXPIRY_GRACE_S = 3600
# DynamoDB's limits: keys per BatchGetItem, actions per transaction
_BATCH_GET_MAX = 100
_TRANSACTION_MAX = 100


class RateLimiter:
    def __init__(self, dynamodb: Any, table: str, name: str, rate_per_s: float) -> None:
        self._db = dynamodb
        self._table = table
        self._key = to_item({"key": f"ratelimit#{name}"})
        self.interval = 1.0 / rate_per_s

    def reserve(self, max_wait_s: float) -> float | None:
        """Reserve a slot: the seconds to wait before using it, or None (nothing reserved) when
        the next free slot is further away than ``max_wait_s``."""
        while True:
            item = self._db.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
            previous = from_item(item["Item"])["tat"] if "Item" in item else None
            now = time.time()
            slot = max(previous or 0.0, now)
            if slot - now > max_wait_s:
                return None
            condition = "attribute_not_exists(tat)" if previous is None else "tat = :previous"
            values = {":tat": slot + self.interval}
            if previous is not None:
                values[":previous"] = previous
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression="SET tat = :tat",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=to_item(values),
                )
            except ClientError as error:
                if is_condition_failure(error):
                    continue  # another sender took that slot: try for the next
                raise
            return slot - now


@dataclass(frozen=True)
class Take:
    """Count ``amount`` in the window item ``key``, if the count stays within ``limit``."""

    key: str
    amount: int
    limit: int
    ends_at: int  # epoch seconds: the window's end


class FixedWindows:
    """Counters of fixed windows, one item each in the idempotency table."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def counts(self, keys: Sequence[str]) -> dict[str, int]:
        """What each window holds now (0 for one never used), read consistently."""
        found: dict[str, int] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _BATCH_GET_MAX):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [to_item({"key": k}) for k in wanted[start : start + _BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    record = from_item(item)
                    found[record["key"]] = int(record.get("count", 0))
                request = response.get("UnprocessedKeys") or {}
        return {k: found.get(k, 0) for k in wanted}

    def take(self, takes: Sequence[Take]) -> bool:
        """Count every take at once, or none of them (False) if any would pass its limit."""
        if not takes:
            return True
        if len(takes) > _TRANSACTION_MAX:
            raise ValueError("too many windows for one transaction")
        actions = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": to_item({"key": t.key}),
                    "UpdateExpression": "ADD #count :amount SET #expires = :expires",
                    "ConditionExpression": "attribute_not_exists(#count) OR #count <= :room",
                    "ExpressionAttributeNames": {"#count": "count", "#expires": "expires_at"},
                    "ExpressionAttributeValues": to_item(
                        {
                            ":amount": t.amount,
                            ":room": t.limit - t.amount,
                            ":expires": t.ends_at + _EXPIRY_GRACE_S,
                        }
                    ),
                }
            }
            for t in takes
        ]
        try:
            self._db.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if is_condition_failure(error) or _conflicted(error):
                return False  # full, or another replica took from the same window: read again
            raise
        return True


def _conflicted(error: ClientError) -> bool:
    reasons = error.response.get("CancellationReasons") or []
    return any(r.get("Code") == "TransactionConflict" for r in reasons)


def count_recent(
    dynamodb: Any,
    table: str,
    index: str,
    owner: str,
    since: str,
    statuses: Sequence[str],
) -> int:
    """How many of ``owner``'s items created since ``since`` are in one of ``statuses``: a
    Query of the owner's index from that moment, counted by DynamoDB (no items returned)."""
    names = {"#o": "owner", "#c": "created_at", "#s": "status"}
    values: dict[str, Any] = {":o": owner, ":since": since}
    placeholders = []
    for n, status in enumerate(statuses):
        values[f":s{n}"] = status
        placeholders.append(f":s{n}")
    query: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": "#o = :o AND #c >= :since",
        "FilterExpression": f"#s IN ({', '.join(placeholders)})",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item(values),
        "Select": "COUNT",
    }
    total = 0
    while True:
        response = dynamodb.query(**query)
        total += int(response.get("Count", 0))
        if "LastEvaluatedKey" not in response:
            return total
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
