"""DynamoDB plumbing shared by the stores: plain values in and out, readable update expressions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

__all__ = [
    "Update",
    "batches",
    "from_item",
    "is_condition_failure",
    "now_iso",
    "parse_iso",
    "to_item",
    "to_value",
]

_T = TypeVar("_T")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds: sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """The moment a timestamp from ``now_iso`` names (aware, UTC)."""
    return datetime.fromisoformat(value)  # reads the Z suffix since Python 3.11


def batches(items: list[_T], size: int) -> list[list[_T]]:
    """``items`` in runs of at most ``size``, in order: DynamoDB's batch and transaction
    requests take a bounded number each."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars from the media core
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes | int):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else Decimal(repr(float(value)))
    if isinstance(value, Mapping):
        return {str(k): _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_to_dynamo(v) for v in value}
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
    return value


def to_value(value: Any) -> dict[str, Any]:
    """One plain Python value (floats welcome) as a DynamoDB attribute value."""
    return _serializer.serialize(_to_dynamo(value))


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_value(v) for k, v in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    reasons = error.response.get("CancellationReasons") or []
    return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)


def query_page(
    db: Any, cursor: Mapping[str, Any] | None, **query: Any
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of a Query from ``cursor``: its items, and the cursor of the next page."""
    if cursor:
        query["ExclusiveStartKey"] = to_item(cursor)
    response = db.query(**query)
    last = response.get("LastEvaluatedKey")
    return [from_item(i) for i in response.get("Items", [])], from_item(last) if last else None


def update_if(db: Any, table: str, key: Mapping[str, Any], update: Update) -> dict[str, Any] | None:
    """Apply ``update`` to the item at ``key``: the item as it is now, or None if the update's
    condition failed."""
    try:
        response = db.update_item(
            TableName=table, Key=to_item(key), ReturnValues="ALL_NEW", **update.kwargs()
        )
    except ClientError as error:
        if is_condition_failure(error):
            return None
        raise
    return from_item(response["Attributes"])


class Update:
    """An UpdateItem expression built from named parts, so that each rule reads in words.

    >>> u = Update()
    >>> u.set(("steps", "extract_metadata", "status"), "running")
    >>> u.where(f"{u.path('status')} = {u.value('queued')}")
    """

    def __init__(self) -> None:
        self._set: list[str] = []
        self._add: list[str] = []
        self._remove: list[str] = []
        self._conditions: list[str] = []
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}

    def path(self, *parts: str) -> str:
        """Placeholder for an attribute path such as ``steps.<name>.status``."""
        placeholders = []
        for part in parts:
            placeholder = next((k for k, v in self._names.items() if v == part), None)
            if placeholder is None:
                placeholder = f"#n{len(self._names)}"
                self._names[placeholder] = part
            placeholders.append(placeholder)
        return ".".join(placeholders)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = to_value(value)
        return placeholder

    def set(self, path: tuple[str, ...] | str, value: Any) -> Update:
        parts = (path,) if isinstance(path, str) else path
        self._set.append(f"{self.path(*parts)} = {self.value(value)}")
        return self

    def set_if_absent(self, path: tuple[str, ...] | str, value: Any) -> Update:
        parts = (path,) if isinstance(path, str) else path
        p = self.path(*parts)
        self._set.append(f"{p} = if_not_exists({p}, {self.value(value)})")
        return self

    def increment(self, path: tuple[str, ...] | str, by: int = 1) -> Update:
        parts = (path,) if isinstance(path, str) else path
        self._add.append(f"{self.path(*parts)} {self.value(by)}")
        return self

    def remove(self, path: tuple[str, ...] | str) -> Update:
        parts = (path,) if isinstance(path, str) else path
        self._remove.append(self.path(*parts))
        return self

    def where(self, condition: str) -> Update:
        """Add a condition (joined to the others with AND)."""
        self._conditions.append(f"({condition})")
        return self

    def kwargs(self) -> dict[str, Any]:
        clauses = []
        if self._set:
            clauses.append("SET " + ", ".join(self._set))
        if self._add:
            clauses.append("ADD " + ", ".join(self._add))
        if self._remove:
            clauses.append("REMOVE " + ", ".join(self._remove))
        kwargs: dict[str, Any] = {"UpdateExpression": " ".join(clauses)}
        if self._conditions:
            kwargs["ConditionExpression"] = " AND ".join(self._conditions)
        if self._names:
            kwargs["ExpressionAttributeNames"] = dict(self._names)
        if self._values:
            kwargs["ExpressionAttributeValues"] = dict(self._values)
        return kwargs
