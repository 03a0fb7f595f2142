"""Webhook endpoints: a user's (events about their own tracks) or an administrator's for every
track; their secrets, signed deliveries and redelivery. Signing and the events are described
in trackflow/domain/webhooks.py, delivery in tasks/webhooks.py."""

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, Strict

from trackflow.adapters import aws
from trackflow.adapters.state.social import encode_cursor
from trackflow.adapters.state.webhooks import ALL_TRACKS, WebhookStore
from trackflow.api.dependencies import AppSettings, Caller
from trackflow.api.errors import ApiError
from trackflow.api.paging import Cursor, own_cursor
from trackflow.api.schemas import RequestBody
from trackflow.domain.webhooks import EVENT_TYPES, EventType, UnsafeUrl
from trackflow.settings import Settings
from trackflow.tasks import webhooks as delivery

router = APIRouter()


class WebhookRequest(RequestBody):
    url: str = Field(min_length=1, max_length=2000, description="https URL that receives events")
    # bodies are strict, but an event type arrives as its JSON string, the enum's value
    events: list[Annotated[EventType, Strict(False)]] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description="event types to receive"
    )
    all_tracks: bool = Field(False, description="administrators: events about every track")


class Webhook(BaseModel):
    id: str
    url: str
    events: list[str]
    all_tracks: bool
    enabled: bool
    created_at: str
    disabled_reason: str | None = None
    failing_since: str | None = None
    previous_secret_until: str | None = None


class NewWebhook(Webhook):
    secret: str = Field(description="whsec_ and base64: shown only now")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: str
    event_id: str
    type: str
    track_id: str
    state: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    created_at: str


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    next_cursor: str | None = None


def webhook_store(settings: AppSettings) -> WebhookStore:
    return WebhookStore.from_settings(aws.client("dynamodb", settings), settings)


Webhooks = Annotated[WebhookStore, Depends(webhook_store)]


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="seconds")


def _view(endpoint: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as its owner sees it: never its secrets."""
    older = endpoint["secrets"][1:]
    return {
        "id": endpoint["endpoint_id"],
        "url": endpoint["url"],
        "events": endpoint["events"],
        "all_tracks": endpoint["audience"] == ALL_TRACKS,
        "enabled": bool(endpoint.get("enabled")),
        "created_at": endpoint["created_at"],
        "disabled_reason": endpoint.get("disabled_reason"),
        "failing_since": endpoint.get("failing_since"),
        "previous_secret_until": _iso(older[0].get("until")) if older else None,
    }


def own_endpoint(webhook_id: str, caller: Caller, store: Webhooks) -> dict[str, Any]:
    """The caller's endpoint; another's answers 404 as a missing one does."""
    endpoint = store.endpoint(webhook_id) if webhook_id.startswith("we_") else None
    if endpoint is None or endpoint["owner"] != caller.user_id:
        raise ApiError(404, "not_found", "no such webhook endpoint")
    return endpoint


OwnEndpoint = Annotated[dict[str, Any], Depends(own_endpoint)]


def _checked_url(url: str, settings: Settings) -> None:
    try:
        delivery.check_endpoint_url(url, settings)
    except UnsafeUrl as refused:
        raise ApiError(400, "unsafe_url", f"the webhook URL was refused: {refused}") from refused


@router.post("/v1/webhooks", status_code=201, response_model=NewWebhook)
def add_webhook(
    request: WebhookRequest, caller: Caller, settings: AppSettings, store: Webhooks
) -> dict[str, Any]:
    """Register an endpoint; its signing secret is in this answer only."""
    if request.all_tracks and not caller.admin:
        raise ApiError(403, "forbidden", "only administrators may hear of every track")
    if len(store.endpoints_of(caller.user_id)) >= settings.webhook_max_endpoints:
        raise ApiError(
            409, "too_many_webhooks", f"at most {settings.webhook_max_endpoints} endpoints a user"
        )
    _checked_url(request.url, settings)
    secret = delivery.new_secret()
    endpoint = store.create_endpoint(
        owner=caller.user_id,
        url=request.url,
        events=list(dict.fromkeys(str(event) for event in request.events)),
        all_tracks=request.all_tracks,
        secret=secret,
    )
    return {**_view(endpoint), "secret": secret}


@router.get("/v1/webhooks", response_model=WebhookList)
def list_webhooks(caller: Caller, store: Webhooks) -> dict[str, Any]:
    """The caller's endpoints, oldest first (without their secrets)."""
    return {"webhooks": [_view(e) for e in store.endpoints_of(caller.user_id)]}


@router.get("/v1/webhooks/{webhook_id}", response_model=Webhook)
def get_webhook(endpoint: OwnEndpoint) -> dict[str, Any]:
    """One endpoint (without its secret)."""
    return _view(endpoint)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204)
def delete_webhook(endpoint: OwnEndpoint, store: Webhooks) -> None:
    """Remove the endpoint: nothing more is sent to it (pending deliveries are cancelled)."""
    if not store.delete_endpoint(endpoint["endpoint_id"], endpoint["owner"]):
        raise ApiError(404, "not_found", "no such webhook endpoint")


@router.post("/v1/webhooks/{webhook_id}/rotate-secret", response_model=NewWebhook)
def rotate_secret(endpoint: OwnEndpoint, settings: AppSettings, store: Webhooks) -> dict[str, Any]:
    """A new secret (shown only now); the old one keeps signing beside it for the grace period."""
    secret = delivery.new_secret()
    until = time.time() + settings.webhook_secret_grace_s
    rotated = store.rotate_secret(endpoint["endpoint_id"], endpoint["owner"], secret, until)
    if rotated is None:
        raise ApiError(409, "rotation_conflict", "the secret changed meanwhile: try again")
    return {**_view(rotated), "secret": secret}


def _delivery_view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["delivery_id"],
        "event_id": item["event_id"],
        "type": item["event_type"],
        "track_id": item["track_id"],
        "state": item["state"],
        "attempts": int(item.get("attempts", 0)),
        "last_status_code": item.get("last_status_code"),
        "last_error": item.get("last_error"),
        "last_attempt_at": item.get("last_attempt_at"),
        "next_attempt_at": _iso(item.get("next_attempt_at"))
        if item["state"] == "pending"
        else None,
        "created_at": item["created_at"],
    }


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    endpoint: OwnEndpoint,
    store: Webhooks,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The endpoint's deliveries, newest first."""
    items, last = store.deliveries(
        endpoint["endpoint_id"],
        limit=limit,
        cursor=own_cursor(cursor, "endpoint_id", endpoint["endpoint_id"], "endpoint's deliveries"),
    )
    return {"deliveries": [_delivery_view(i) for i in items], "next_cursor": encode_cursor(last)}


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=Delivery,
)
def redeliver(delivery_id: str, endpoint: OwnEndpoint, store: Webhooks) -> dict[str, Any]:
    """Send the event to this endpoint again now (same webhook-id), with a fresh retry window."""
    if not endpoint.get("enabled"):
        raise ApiError(409, "webhook_disabled", "the endpoint is disabled: register it again")
    if store.delivery(endpoint["endpoint_id"], delivery_id[:200]) is None:
        raise ApiError(404, "not_found", "no such delivery for this endpoint")
    again = delivery.redeliver(endpoint["endpoint_id"], delivery_id)
    if again is None:
        raise ApiError(404, "not_found", "no such delivery for this endpoint")
    return _delivery_view(again)
