"""User profiles: where to email them, whether they want email, their lane, whether they
administer, and since when their tokens are valid.

``admin`` is absent until someone decides it (absent means no rights); ``tokens_valid_after``
(epoch seconds) revokes every token issued before it.
"""

from __future__ import annotations

import time
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

    def seed_admin(self, user_id: str, *, email: str | None = None) -> dict[str, Any]:
        """Record ``user_id`` as an administrator unless their rights were already decided (an
        explicit ``admin: false`` stays): how a local stack's named administrators start."""
        self.ensure(user_id, email=email)
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=to_item({"user_id": user_id}),
                UpdateExpression="SET #admin = :admin",
                ConditionExpression="attribute_not_exists(#admin)",
                ExpressionAttributeNames={"#admin": "admin"},
                ExpressionAttributeValues=to_item({":admin": True}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return self.get(user_id) or {}
        return from_item(response["Attributes"])

    def revoke_tokens(self, user_id: str, *, now: float | None = None) -> dict[str, Any]:
        """Refuse every token of ``user_id`` issued up to now (this second included, since
        ``iat`` counts whole seconds); tokens issued afterwards work."""
        after = int(time.time() if now is None else now) + 1
        return self.update(user_id, tokens_valid_after=after)
