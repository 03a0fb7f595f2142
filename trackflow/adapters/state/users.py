"""User profiles: where to email them, whether they want email, and their lane."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import (
    Update,
    from_item,
    is_condition_failure,
    now_iso,
    to_item,
)

__all__ = ["UserStore"]


class UserStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def get(self, user_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(TableName=self._table, Key=to_item({"user_id": user_id}))
        return from_item(response["Item"]) if "Item" in response else None

    def ensure(self, user_id: str, *, email: str | None = None) -> dict[str, Any]:
        """The user's profile, created on first sight (email defaults to a local address)."""
        profile = {
            "user_id": user_id,
            "email": email or f"{user_id}@users.trackflow.local",
            "priority": False,
            "email_opt_out": False,
            "created_at": now_iso(),
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_item(profile),
                ConditionExpression="attribute_not_exists(user_id)",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return self.get(user_id) or profile
        return profile

    def update(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Set profile fields (email, priority, email_opt_out) of an existing user."""
        profile = self.ensure(user_id)
        if not fields:
            return profile
        u = Update()
        for name, value in fields.items():
            u.set(name, value)
        response = self._db.update_item(
            TableName=self._table,
            Key=to_item({"user_id": user_id}),
            ReturnValues="ALL_NEW",
            **u.kwargs(),
        )
        return from_item(response["Attributes"])
