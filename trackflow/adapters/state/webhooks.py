"""Webhook endpoints, events and deliveries in DynamoDB; every change that must happen once is
a conditional write.

- ``webhooks``: one item per endpoint. ``audience`` is the owner's user id, or ``*`` for an
  administrator's endpoint that hears of every track; the ``by_audience`` index finds who an
  event goes to, ``by_owner`` lists a user's endpoints. Secrets never leave this store through
  the API after they were shown once (the table is encrypted at rest with the environment's
  KMS key, infra/modules/state).
- ``webhook_events``: one item per event, keyed by its deterministic id: the conditional put
  that creates it is what makes one outcome one event.
- ``webhook_deliveries``: one item per (endpoint, event). A delivery's attempts are chained by a
  ``ticket``: each scheduled message names the ticket it was sent for, and only a message with
  the current ticket may claim the next attempt (with a lease), so duplicated messages attempt
  nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import (
    Update,
    from_item,
    is_condition_failure,
    now_iso,
    query_page,
    to_item,
    update_if,
)

__all__ = ["ALL_TRACKS", "DeliveryState", "WebhookStore"]

ALL_TRACKS = "*"  # the audience of an administrator's endpoint for every track


class DeliveryState:
    PENDING = "pending"  # an attempt is due (now or later)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # the retry window is spent
    GONE = "gone"  # the endpoint answered 410 (and was disabled)
    CANCELLED = "cancelled"  # the endpoint was removed or disabled before it succeeded


class WebhookStore:
    def __init__(self, dynamodb: Any, endpoints: str, events: str, deliveries: str) -> None:
        self._db = dynamodb
        self._endpoints = endpoints
        self._events = events
        self._deliveries = deliveries

    @classmethod
    def from_settings(cls, dynamodb: Any, settings: Any) -> WebhookStore:
        return cls(
            dynamodb,
            settings.table("webhooks"),
            settings.table("webhook_events"),
            settings.table("webhook_deliveries"),
        )

    # --- endpoints ----------------------------------------------------------------------------
    def create_endpoint(
        self, *, owner: str, url: str, events: Sequence[str], all_tracks: bool, secret: str
    ) -> dict[str, Any]:
        item = {
            "endpoint_id": "we_" + uuid.uuid4().hex,
            "owner": owner,
            "audience": ALL_TRACKS if all_tracks else owner,
            "url": url,
            "events": list(events),
            "secrets": [{"secret": secret, "since": now_iso()}],
            "enabled": True,
            "created_at": now_iso(),
        }
        self._db.put_item(
            TableName=self._endpoints,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(endpoint_id)",
        )
        return item

    def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._endpoints,
            Key=to_item({"endpoint_id": endpoint_id}),
            ConsistentRead=True,
        )
        return from_item(response["Item"]) if "Item" in response else None

    def endpoints_of(self, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        items, _ = query_page(
            self._db,
            None,
            TableName=self._endpoints,
            IndexName="by_owner",
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues=to_item({":o": owner}),
            Limit=limit,
        )
        return items

    def subscribed(self, owner: str, event_type: str) -> list[dict[str, Any]]:
        """Enabled endpoints that hear of ``event_type`` on ``owner``'s tracks: the owner's own
        and the administrators' endpoints for every track."""
        found: list[dict[str, Any]] = []
        for audience in (owner, ALL_TRACKS):
            cursor: dict[str, Any] | None = None
            while True:
                items, cursor = query_page(
                    self._db,
                    cursor,
                    TableName=self._endpoints,
                    IndexName="by_audience",
                    KeyConditionExpression="audience = :a",
                    ExpressionAttributeValues=to_item({":a": audience}),
                )
                found += [e for e in items if e.get("enabled") and event_type in e["events"]]
                if cursor is None:
                    break
        return found

    def delete_endpoint(self, endpoint_id: str, owner: str) -> bool:
        try:
            self._db.delete_item(
                TableName=self._endpoints,
                Key=to_item({"endpoint_id": endpoint_id}),
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=to_item({":o": owner}),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def rotate_secret(
        self, endpoint_id: str, owner: str, secret: str, old_until: float
    ) -> dict[str, Any] | None:
        """The new secret signs from now on; the newest old one keeps signing until
        ``old_until`` (Unix seconds; both signatures are sent meanwhile); older ones stop now."""
        current = self.endpoint(endpoint_id)
        if current is None or current["owner"] != owner:
            return None
        previous = {**current["secrets"][0], "until": old_until}
        u = Update()
        u.set("secrets", [{"secret": secret, "since": now_iso()}, previous])
        # against a rotation at the same moment: the one that read the same secrets wins
        u.where(f"{u.path('secrets')} = {u.value(current['secrets'])}")
        return update_if(self._db, self._endpoints, {"endpoint_id": endpoint_id}, u)

    def disable(self, endpoint_id: str, reason: str) -> dict[str, Any] | None:
        """Disable the endpoint; the endpoint if this call disabled it (None if it was already
        disabled or gone), so that its owner is told once."""
        u = Update()
        u.set("enabled", False).set("disabled_at", now_iso()).set("disabled_reason", reason)
        u.where(f"{u.path('enabled')} = {u.value(True)}")
        return update_if(self._db, self._endpoints, {"endpoint_id": endpoint_id}, u)

    def note_failure(self, endpoint_id: str) -> dict[str, Any] | None:
        """Record that an attempt failed: ``failing_since`` is the first failure since the last
        success."""
        u = Update().set_if_absent("failing_since", now_iso())
        u.where("attribute_exists(endpoint_id)")
        return update_if(self._db, self._endpoints, {"endpoint_id": endpoint_id}, u)

    def note_success(self, endpoint_id: str) -> None:
        u = Update().remove("failing_since")
        u.where("attribute_exists(failing_since)")
        update_if(self._db, self._endpoints, {"endpoint_id": endpoint_id}, u)

    # --- events -------------------------------------------------------------------------------
    def create_event(self, event: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create the event unless it exists: (created, the event as stored)."""
        try:
            self._db.put_item(
                TableName=self._events,
                Item=to_item(event),
                ConditionExpression="attribute_not_exists(event_id)",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            existing = self.event(event["event_id"])
            return False, existing if existing is not None else dict(event)
        return True, dict(event)

    def event(self, event_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._events, Key=to_item({"event_id": event_id}), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def mark_dispatched(self, event_id: str) -> None:
        u = Update().set("dispatched_at", now_iso())
        u.where("attribute_exists(event_id)")
        update_if(self._db, self._events, {"event_id": event_id}, u)

    # --- deliveries ---------------------------------------------------------------------------
    def create_delivery(self, delivery: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create the delivery of one event to one endpoint unless it exists."""
        try:
            self._db.put_item(
                TableName=self._deliveries,
                Item=to_item(delivery),
                ConditionExpression="attribute_not_exists(delivery_id)",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            existing = self.delivery(delivery["endpoint_id"], delivery["delivery_id"])
            return False, existing if existing is not None else dict(delivery)
        return True, dict(delivery)

    def delivery(self, endpoint_id: str, delivery_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._deliveries,
            Key=to_item({"endpoint_id": endpoint_id, "delivery_id": delivery_id}),
            ConsistentRead=True,
        )
        return from_item(response["Item"]) if "Item" in response else None

    def deliveries(
        self, endpoint_id: str, *, limit: int, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of an endpoint's deliveries, newest first."""
        return query_page(
            self._db,
            cursor,
            TableName=self._deliveries,
            KeyConditionExpression="endpoint_id = :e",
            ExpressionAttributeValues=to_item({":e": endpoint_id}),
            ScanIndexForward=False,
            Limit=limit,
        )

    def _delivery_update(self, delivery: Mapping[str, Any], u: Update) -> dict[str, Any] | None:
        key = {"endpoint_id": delivery["endpoint_id"], "delivery_id": delivery["delivery_id"]}
        return update_if(self._db, self._deliveries, key, u)

    def claim_attempt(
        self, delivery: Mapping[str, Any], *, ticket: str, owner: str, now: float, lease_s: float
    ) -> dict[str, Any] | None:
        """Claim the next attempt for the message sent with ``ticket``: None if the ticket is
        stale, the delivery is over, or another live claim holds it."""
        u = Update()
        u.set("lease_owner", owner).set("lease_until", now + lease_s)
        u.where(f"{u.path('ticket')} = {u.value(ticket)}")
        u.where(f"{u.path('state')} = {u.value(DeliveryState.PENDING)}")
        lease = u.path("lease_until")
        u.where(
            f"attribute_not_exists({lease}) OR {lease} < {u.value(now)}"
            f" OR {u.path('lease_owner')} = {u.value(owner)}"
        )
        return self._delivery_update(delivery, u)

    def record_attempt(
        self,
        delivery: Mapping[str, Any],
        *,
        owner: str,
        now: float,
        status_code: int | None,
        error: str | None,
        state: str,
        next_attempt_at: float | None = None,
        ticket: str | None = None,
    ) -> dict[str, Any] | None:
        """Record an attempt's answer under our claim; a next ``ticket`` schedules another."""
        u = Update()
        u.increment("attempts")
        u.set("state", state).set("last_attempt_at", now_iso())
        u.set("last_status_code", status_code).set("last_error", error)
        u.set("scheduled_by", owner)
        u.remove("lease_owner").remove("lease_until")
        if next_attempt_at is not None and ticket is not None:
            u.set("next_attempt_at", next_attempt_at).set("ticket", ticket)
        else:
            u.remove("next_attempt_at")
        u.set_if_absent("first_attempt_at", now)
        u.where(f"{u.path('lease_owner')} = {u.value(owner)}")
        return self._delivery_update(delivery, u)

    def end(self, delivery: Mapping[str, Any], state: str) -> dict[str, Any] | None:
        """End a pending delivery without an attempt (its endpoint went away)."""
        u = Update().set("state", state).remove("next_attempt_at")
        u.where(f"{u.path('state')} = {u.value(DeliveryState.PENDING)}")
        return self._delivery_update(delivery, u)

    def redeliver(
        self, endpoint_id: str, delivery_id: str, *, now: float, ticket: str
    ) -> dict[str, Any] | None:
        """Schedule one more round of attempts now, with a fresh retry window (a stale chain
        of messages finds its ticket replaced and stops)."""
        u = Update()
        u.set("state", DeliveryState.PENDING).set("ticket", ticket).set("next_attempt_at", now)
        u.set("redelivered_at", now_iso()).set("scheduled_by", "api")
        u.remove("lease_owner").remove("lease_until").remove("first_attempt_at")
        u.where("attribute_exists(delivery_id)")
        return update_if(
            self._db,
            self._deliveries,
            {"endpoint_id": endpoint_id, "delivery_id": delivery_id},
            u,
        )
