"""A send rate shared by every worker, kept in DynamoDB (GCRA: one theoretical arrival time).

Each sender reserves the next free slot with one conditional write; slots are spaced by
1/rate seconds, so however many workers send, the account's rate is never exceeded.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import from_item, is_condition_failure, to_item

__all__ = ["RateLimiter"]


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
