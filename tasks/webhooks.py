"""Webhook delivery, the Celery shell: record an event once, fan it out to the endpoints that
asked for it, and deliver each on its own.

- ``emit`` runs where the workflow decides an outcome (``tasks.workflow.perform``): one
  conditional write creates the event (its id is deterministic, so a decision taken twice, a
  redelivered message or a duplicate S3 event, finds it there), then one message starts
  ``dispatch``. Nothing is written for a track whose owner has no endpoint for the event.
- ``dispatch`` (I/O lane) creates one delivery per (event, endpoint) with conditional writes and
  sends one ``deliver`` message for each.
- ``deliver`` makes one attempt: resolve the host, refuse private addresses, connect to the
  address it checked (a second lookup could answer differently: DNS rebinding), POST with a
  10 s timeout and no redirects. A 2xx ends the delivery, a 410 disables the endpoint, anything
  else is tried again later with exponential backoff and jitter, for ``webhook_retry_for_s``.

Waiting between attempts: SQS delays a message by at most 15 minutes, and a Celery countdown
(an ETA) would be held unacknowledged by a worker past the queue's visibility timeout and then
delivered again. So a wait is sent as an SQS ``DelaySeconds`` of at most 900 s; a message that
arrives before its attempt is due sends itself on for the rest ("hops": at most ~100 messages
for a day-long wait, no worker held). A sweeper would need a scan of due deliveries across all
endpoints (a hot index key) for the same result.

Messages carry ids and a ticket only; every attempt is claimed with a conditional write, so a
duplicated message attempts nothing twice (see ``trackflow.adapters.state.webhooks``).
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from trackflow.adapters import aws
from trackflow.adapters.mail import send_email
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.ratelimit import RateLimiter
from trackflow.adapters.state.users import UserStore
from trackflow.adapters.state.webhooks import DeliveryState, WebhookStore
from trackflow.domain import webhooks as domain
from trackflow.domain.emails import compose_endpoint_disabled, deliverable_address
from trackflow.domain.webhooks import Answer, Target, UnsafeUrl
from trackflow.logs import get_logger
from trackflow.settings import Settings, WorkerGroup, get_settings
from trackflow.tasks.app import app, routed

__all__ = [
    "check_endpoint_url",
    "deliver",
    "dispatch",
    "emit",
    "emit_deleted",
    "emit_progress",
    "new_secret",
    "redeliver",
    "resolve",
    "webhook_store",
]

log = get_logger(__name__)

StageState = Literal["started", "ended"]

MAX_DELAY_S = 900  # SQS's longest DelaySeconds
EVENT_RETENTION_S = 30 * 24 * 3600  # events and deliveries expire (TTL) after a month
_FIRST_TICKET = "0"


@functools.cache
def _stores(settings: Settings, pid: int) -> WebhookStore:
    return WebhookStore.from_settings(aws.client("dynamodb", settings), settings)


def webhook_store(settings: Settings | None = None) -> WebhookStore:
    settings = settings or get_settings()
    return _stores(settings, os.getpid())  # by process: a client's pool must not cross a fork


def new_secret() -> str:
    return domain.new_secret(secrets.token_bytes(domain.SECRET_BYTES))


# --- where we may send ------------------------------------------------------------------------
def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA); [] if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_endpoint_url(url: str, settings: Settings) -> tuple[Target, str]:
    """The URL taken apart and the address to connect to, or UnsafeUrl saying why not."""
    allow_local = settings.webhooks_allow_loopback
    target = domain.check_url(url, allow_local=allow_local)
    addresses = resolve(target.host, target.port)
    reason = domain.refuse_any(addresses, allow_loopback=allow_local)
    if reason:
        raise UnsafeUrl(reason)
    return target, addresses[0]


# --- events -----------------------------------------------------------------------------------
def _generation(track: Mapping[str, Any]) -> str:
    # a reprocessed track may end again: its new outcome is a new event
    return str(track.get("reprocessed_at") or "")


def _record_event(
    track: Mapping[str, Any], event_type: str, data: Mapping[str, Any], detail: str = ""
) -> None:
    store = webhook_store()
    if not store.subscribed(track["owner"], event_type):
        return  # nobody listens: no write, no message
    now = now_iso()
    event = {
        "event_id": domain.event_id(track["track_id"], event_type, _generation(track), detail),
        "type": event_type,
        "track_id": track["track_id"],
        "owner": track["owner"],
        "created_at": now,
        "body": domain.event_body(event_type, now, data).decode(),
        "expires_at": int(time.time()) + EVENT_RETENTION_S,
    }
    created, stored = store.create_event(event)
    if created or not stored.get("dispatched_at"):
        # not yet dispatched: a writer that died between the two, or one still at it (dispatch
        # is idempotent)
        dispatch.apply_async((event["event_id"],))
        log.info("webhook_event", event_id=event["event_id"], type=event_type, created=created)


def emit(track: Mapping[str, Any], event_types: Iterable[str]) -> None:
    """Record each outcome event of ``track`` once, and start its deliveries. Never raises:
    webhooks must not hold up or break the workflow that decided the outcome."""
    for event_type in event_types:
        try:
            _record_event(track, event_type, domain.track_data(track))
        except Exception:  # logged; the outcome itself stands
            log.exception("webhook_event_not_recorded", type=event_type)


def emit_progress(track: Mapping[str, Any], stage: str, state: StageState) -> None:
    """``track.progress``: a stage started, or ended with its gate passed (only endpoints that
    asked for progress hear it)."""
    data = {"track_id": track["track_id"], "stage": stage, "state": state}
    try:
        _record_event(track, "track.progress", data, detail=f"{stage}:{state}")
    except Exception:  # logged; progress is a courtesy
        log.exception("webhook_event_not_recorded", type="track.progress")


def emit_deleted(track: Mapping[str, Any]) -> None:
    """``track.deleted``: the owner deleted the track (its id, owner and when)."""
    data = {"track_id": track["track_id"], "owner": track["owner"], "deleted_at": now_iso()}
    try:
        _record_event(track, "track.deleted", data)
    except Exception:  # logged; the deletion itself stands
        log.exception("webhook_event_not_recorded", type="track.deleted")


# --- the tasks --------------------------------------------------------------------------------
def _send_deliver(endpoint_id: str, delivery_id: str, ticket: str, delay_s: float = 0.0) -> None:
    delay = int(min(MAX_DELAY_S, max(0.0, delay_s)))
    options: dict[str, Any] = {"delay_seconds": delay} if delay else {}
    deliver.apply_async((endpoint_id, delivery_id, ticket), **options)


def _compact(iso: str) -> str:
    return iso.replace("-", "").replace(":", "").replace(".", "")


_BOOKKEEPING_ERRORS = (BotoCoreError, ClientError, OSError)
# Both tasks hand their message back if the worker dies, and retry only when their own
# bookkeeping (DynamoDB, SQS) failed: an endpoint's failures are the delivery schedule's.
_BOOKKEEPING_RETRIES: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": _BOOKKEEPING_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "max_retries": 8,
}


@app.task(
    name=routed("trackflow.webhooks.dispatch", WorkerGroup.IO),
    **_BOOKKEEPING_RETRIES,
)
def dispatch(self: Any, event_id: str) -> int:
    """One delivery per endpoint that hears of the event; returns how many were sent."""
    settings = get_settings()
    store = webhook_store(settings)
    event = store.event(event_id)
    if event is None:
        return 0
    sent = 0
    now = time.time()
    for endpoint in store.subscribed(event["owner"], event["type"]):
        delivery = {
            "endpoint_id": endpoint["endpoint_id"],
            # the event's time first: an endpoint's deliveries sort by it
            "delivery_id": f"{_compact(event['created_at'])}-{event_id}",
            "event_id": event_id,
            "event_type": event["type"],
            "track_id": event["track_id"],
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "ticket": _FIRST_TICKET,
            "next_attempt_at": now,
            "created_at": now_iso(),
            "expires_at": int(now) + EVENT_RETENTION_S,
        }
        created, stored = store.create_delivery(delivery)
        untried = stored.get("ticket") == _FIRST_TICKET and stored.get("attempts") == 0
        if created or (untried and stored.get("state") == DeliveryState.PENDING):
            _send_deliver(stored["endpoint_id"], stored["delivery_id"], _FIRST_TICKET)
            sent += 1
    store.mark_dispatched(event_id)
    return sent


def _attempt(
    endpoint: Mapping[str, Any], event: Mapping[str, Any], settings: Settings, now: float
) -> tuple[int | None, str | None, float | None]:
    """One POST: (status code or None, our sentence on what went wrong, Retry-After seconds)."""
    try:
        target, address = check_endpoint_url(endpoint["url"], settings)
    except UnsafeUrl as refused:
        return None, f"not sent: {refused}", None
    body = event["body"].encode()
    # the newest secret, and the one before it until its grace period ends (rotation)
    live = [s["secret"] for s in endpoint["secrets"] if float(s.get("until", now + 1)) > now]
    headers = domain.webhook_headers(live, event["event_id"], int(now), body)
    default_port = target.port == (443 if target.scheme == "https" else 80)
    headers["host"] = target.host if default_port else f"{target.host}:{target.port}"
    netloc = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{netloc}:{target.port}{target.path}"
    # connect to the address we checked; TLS still verifies the certificate for the host name
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with (
            httpx.Client(
                follow_redirects=False, timeout=settings.webhook_timeout_s, trust_env=False
            ) as http,
            http.stream("POST", url, content=body, headers=headers, extensions=extensions) as r,
        ):
            retry_after = r.headers.get("retry-after", "")
            wait = float(retry_after) if retry_after.isdigit() else None
            return r.status_code, None if r.is_success else f"answered {r.status_code}", wait
    except httpx.TimeoutException:
        return None, f"no answer within {settings.webhook_timeout_s:g} s", None
    except httpx.HTTPError as error:
        return None, f"could not connect: {type(error).__name__}", None


def _disable(store: WebhookStore, endpoint: Mapping[str, Any], reason: str) -> None:
    """Disable the endpoint; whoever disables it emails its owner, once."""
    disabled = store.disable(endpoint["endpoint_id"], reason)
    if disabled is None:
        return
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint["endpoint_id"], reason=reason)
    settings = get_settings()
    try:
        user = UserStore(aws.client("dynamodb", settings), settings.table("users")).ensure(
            endpoint["owner"]
        )
        address = deliverable_address(user)
        if user.get("email_opt_out") or address is None:
            return
        # within the account's send rate, as every email of ours; a booked-up rate waits here,
        # on the I/O lane, rather than lose the one notice
        wait = RateLimiter(
            aws.client("dynamodb", settings),
            settings.table("idempotency"),
            "ses",
            settings.email_rate_per_s,
        ).reserve(max_wait_s=settings.retry_backoff_max_s)
        time.sleep(wait or 0.0)
        send_email(settings, address, compose_endpoint_disabled(endpoint, reason))
    except (BotoCoreError, ClientError):
        log.exception("webhook_disable_email_not_sent", endpoint_id=endpoint["endpoint_id"])


def _failing_too_long(endpoint: Mapping[str, Any] | None, settings: Settings, now: float) -> bool:
    since = (endpoint or {}).get("failing_since")
    if not since:
        return False
    started = datetime.fromisoformat(since).timestamp()
    return now - started >= settings.webhook_disable_after_s


@app.task(
    name=routed("trackflow.webhooks.deliver", WorkerGroup.IO),
    **_BOOKKEEPING_RETRIES,
    # one attempt: a lookup, a connection and the timeout, well below the I/O queue's
    # visibility timeout; each delivery is its own task, so a slow endpoint holds one slot
    soft_time_limit=60,
    time_limit=90,
)
def deliver(self: Any, endpoint_id: str, delivery_id: str, ticket: str) -> str:
    """One attempt at one delivery, if it is due and this message's ticket is current."""
    settings = get_settings()
    store = webhook_store(settings)
    me = self.request.id or uuid.uuid4().hex
    delivery = store.delivery(endpoint_id, delivery_id)
    if delivery is None or delivery["state"] != DeliveryState.PENDING:
        return "over"
    if delivery["ticket"] != ticket:
        # this message was answered before: if it was us that scheduled the next attempt and
        # we died before sending its message, send it now (a duplicate is claimed once)
        if delivery.get("scheduled_by") == me:
            _send_deliver(
                endpoint_id,
                delivery_id,
                delivery["ticket"],
                delivery["next_attempt_at"] - time.time(),
            )
        return "stale"
    now = time.time()
    wait = float(delivery.get("next_attempt_at", now)) - now
    if wait > 1.0:  # a hop of a long wait
        _send_deliver(endpoint_id, delivery_id, ticket, wait)
        return "waiting"
    claimed = store.claim_attempt(
        delivery, ticket=ticket, owner=me, now=now, lease_s=settings.webhook_timeout_s + 80
    )
    if claimed is None:
        return "claimed elsewhere"
    endpoint = store.endpoint(endpoint_id)
    event = store.event(delivery["event_id"])
    if endpoint is None or not endpoint.get("enabled") or event is None:
        store.end(claimed, DeliveryState.CANCELLED)
        return "cancelled"
    status, error, retry_after = _attempt(endpoint, event, settings, now)
    answer = domain.judge_answer(status)
    log.info(
        "webhook_attempt",
        endpoint_id=endpoint_id,
        event_id=event["event_id"],
        attempt=int(claimed.get("attempts", 0)) + 1,
        status_code=status,
        answer=str(answer),
    )
    if answer is Answer.DELIVERED:
        store.record_attempt(
            claimed,
            owner=me,
            now=now,
            status_code=status,
            error=None,
            state=DeliveryState.DELIVERED,
        )
        store.note_success(endpoint_id)
        return "delivered"
    if answer is Answer.GONE:
        store.record_attempt(
            claimed, owner=me, now=now, status_code=status, error=error, state=DeliveryState.GONE
        )
        _disable(store, endpoint, "it answered 410 Gone")
        return "gone"
    next_at = domain.next_attempt_at(
        first_attempt_at=float(claimed.get("first_attempt_at", now)),
        now=now,
        attempts=int(claimed.get("attempts", 0)) + 1,
        jitter=random.random(),
        retry_for_s=settings.webhook_retry_for_s,
        retry_after_s=retry_after,
    )
    next_ticket = uuid.uuid4().hex
    recorded = store.record_attempt(
        claimed,
        owner=me,
        now=now,
        status_code=status,
        error=error,
        state=DeliveryState.PENDING if next_at is not None else DeliveryState.FAILED,
        next_attempt_at=next_at,
        ticket=next_ticket if next_at is not None else None,
    )
    failing = store.note_failure(endpoint_id)
    if _failing_too_long(failing, settings, now):
        days = settings.webhook_disable_after_s / 86400
        _disable(store, endpoint, f"every attempt failed for {days:g} days")
    if recorded is not None and next_at is not None:
        _send_deliver(endpoint_id, delivery_id, next_ticket, next_at - now)
        return "retrying"
    return "failed"


def redeliver(endpoint_id: str, delivery_id: str) -> dict[str, Any] | None:
    """Try a delivery again now, with a fresh retry window (the API's redeliver)."""
    ticket = uuid.uuid4().hex
    delivery = webhook_store().redeliver(endpoint_id, delivery_id, now=time.time(), ticket=ticket)
    if delivery is not None:
        _send_deliver(endpoint_id, delivery_id, ticket)
    return delivery
