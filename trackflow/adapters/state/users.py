"""User profiles: where to email them, whether they want email, their lane, whether they
administer, and since when their tokens are valid.

``admin`` is absent until someone decides it (absent means no rights); ``tokens_valid_after``
(epoch seconds) revokes every token issued before it.

``email`` is where mail goes, and only once ``email_verified`` (see
``trackflow.domain.emails.deliverable_address``). An address the user gives is kept as
``pending_email`` until its link is followed: the link's token lives, hashed, in the
idempotency table (:class:`EmailVerifications`), so that no profile holds a usable secret.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import (
    Update,
    from_item,
    is_condition_failure,
    now_iso,
    to_item,
    update_if,
)
from trackflow.domain.emails import local_address

__all__ = ["EmailVerifications", "UserStore"]


class UserStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def get(self, user_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(TableName=self._table, Key=to_item({"user_id": user_id}))
        return from_item(response["Item"]) if "Item" in response else None

    def ensure(self, user_id: str, *, email: str | None = None) -> dict[str, Any]:
        """The user's profile, created on first sight (email defaults to a local address).

        The first address is taken as verified: the default is the service's own mailbox, and
        one named by the token was vouched for by its issuer (our own secret, or the identity
        provider the deployment trusts); an address the user types in later is not."""
        profile = {
            "user_id": user_id,
            "email": email or local_address(user_id),
            "email_verified": True,
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

    def request_email(self, user_id: str, address: str) -> dict[str, Any]:
        """Keep ``address`` as the one waiting for confirmation (mail still goes to ``email``)."""
        self.ensure(user_id)
        return self.update(user_id, pending_email=address)

    def drop_pending_email(self, user_id: str) -> dict[str, Any]:
        """Forget an address waiting for confirmation (the user went back to their own)."""
        self.ensure(user_id)
        u = Update().remove("pending_email")
        response = self._db.update_item(
            TableName=self._table,
            Key=to_item({"user_id": user_id}),
            ReturnValues="ALL_NEW",
            **u.kwargs(),
        )
        return from_item(response["Attributes"])

    def confirm_email(self, user_id: str, address: str) -> dict[str, Any] | None:
        """Make ``address`` the verified one, if it is still the one waiting (a later change
        voids earlier links); None otherwise."""
        u = Update().set("email", address).set("email_verified", True).remove("pending_email")
        u.where(f"{u.path('pending_email')} = {u.value(address)}")
        return update_if(self._db, self._table, {"user_id": user_id}, u)

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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EmailVerifications:
    """Links that confirm an address: a random token, stored only as its hash, for a time."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def issue(self, user_id: str, address: str, ttl_s: int, *, now: float | None = None) -> str:
        """A new token that confirms ``address`` for ``user_id`` within ``ttl_s``."""
        token = secrets.token_urlsafe(32)
        expires = int(time.time() if now is None else now) + ttl_s
        record = {
            "key": f"verify-email#{_digest(token)}",
            "user_id": user_id,
            "address": address,
            "expires_at": expires,  # the table's TTL; checked here too, as TTL deletes late
        }
        self._db.put_item(TableName=self._table, Item=to_item(record))
        return token

    def redeem(self, token: str, *, now: float | None = None) -> tuple[str, str] | None:
        """The (user, address) a token confirms, once: the record goes as it is read, so the
        same link cannot be followed twice. None for an unknown, used or expired token."""
        response = self._db.delete_item(
            TableName=self._table,
            Key=to_item({"key": f"verify-email#{_digest(token)}"}),
            ReturnValues="ALL_OLD",
        )
        if not response.get("Attributes"):  # DynamoDB omits it for no item; moto sends {}
            return None
        record = from_item(response["Attributes"])
        if record["expires_at"] <= (time.time() if now is None else now):
            return None
        return str(record["user_id"]), str(record["address"])
