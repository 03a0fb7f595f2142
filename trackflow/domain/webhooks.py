"""Webhooks, the pure part: event types and bodies, Standard Webhooks signatures, the retry
schedule, what an answer means, and whether a URL or an address may be called.

Signatures follow Standard Webhooks v1 (https://www.standardwebhooks.com/, spec/standard-webhooks.md
in github.com/standard-webhooks/standard-webhooks): ``webhook-id`` is the event id (the same on
every retry, so that receivers de-duplicate on it), ``webhook-timestamp`` the attempt's Unix
seconds, and ``webhook-signature`` a space-separated list of ``v1,<base64 HMAC-SHA256>`` of
``{id}.{timestamp}.{body}``, keyed by the base64-decoded ``whsec_`` secret; during a secret
rotation both the new and the old secret sign.

No I/O here: the store, the tasks and the API call these with plain values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from trackflow.domain.track import public_record

__all__ = [
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "MAX_BODY_BYTES",
    "Answer",
    "EventType",
    "Target",
    "UnsafeUrl",
    "address_refusal",
    "check_url",
    "decode_secret",
    "event_body",
    "event_id",
    "judge_answer",
    "new_secret",
    "next_attempt_at",
    "refuse_any",
    "retry_delay",
    "sign",
    "signature_header",
    "track_data",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for at least 24 random bytes


# Every type an endpoint may ask for; track.progress only when asked for by name, as it is
# chatty (a stage started), the others are outcomes and a deletion.
class EventType(StrEnum):
    PUBLISHED = "track.published"
    REJECTED = "track.rejected"
    FAILED = "track.failed"
    HELD_FOR_REVIEW = "track.held_for_review"
    DELETED = "track.deleted"
    PROGRESS = "track.progress"


EVENT_TYPES: tuple[str, ...] = tuple(str(t) for t in EventType)
DEFAULT_EVENTS: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t != "track.progress")

# The spec advises payloads under about 20 kB; a body over it leaves out the per-step detail.
MAX_BODY_BYTES = 20_000
_BULKY_FIELDS = ("steps", "outputs", "waveform", "artwork")
# Bookkeeping of ours that a receiver has no use for.
_INTERNAL_FIELDS = frozenset({"notifications", "stages", "resumes", "source", "lane"})


# --- secrets and signatures -------------------------------------------------------------------
def new_secret(random_bytes: bytes) -> str:
    """A signing secret as the spec writes it: ``whsec_`` and base64 of random bytes."""
    if len(random_bytes) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def decode_secret(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the exact bytes sent."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Every current secret's signature, space-separated (two during a rotation)."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "user-agent": "trackflow-webhooks/1",
    }


# --- events -----------------------------------------------------------------------------------
def event_id(track_id: str, event_type: str, generation: str = "", detail: str = "") -> str:
    """The one id an event can have: the same track, type, reprocessing generation (and, for
    progress, stage) always give the same id, so a decision taken twice makes one event.
    Letters and digits only: the spec forbids ``.`` in the id it signs."""
    key = "\0".join((track_id, event_type, generation, detail))
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def track_data(track: Mapping[str, Any]) -> dict[str, Any]:
    """The public track record, without our bookkeeping."""
    record = public_record(track)
    return {k: v for k, v in record.items() if k not in _INTERNAL_FIELDS}


def event_body(event_type: str, timestamp: str, data: Mapping[str, Any]) -> bytes:
    """``{type, timestamp, data}`` as compact JSON: these exact bytes are stored, signed and
    sent on every attempt (re-serialised JSON would break signatures)."""

    def encode(payload: Mapping[str, Any]) -> bytes:
        document = {"type": event_type, "timestamp": timestamp, "data": payload}
        return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()

    body = encode(data)
    if len(body) > MAX_BODY_BYTES:
        body = encode({k: v for k, v in data.items() if k not in _BULKY_FIELDS})
    return body


# --- answers and retries ----------------------------------------------------------------------
class Answer(StrEnum):
    """What an attempt's answer means for the delivery."""

    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver asks us to stop; the endpoint is disabled
    RETRY = "retry"  # anything else: 3xx (redirects are not followed), 4xx, 5xx, no answer


def judge_answer(status_code: int | None) -> Answer:
    if status_code is not None and 200 <= status_code < 300:
        return Answer.DELIVERED
    if status_code == 410:
        return Answer.GONE
    return Answer.RETRY


def retry_delay(
    attempts: int, jitter: float, *, first_s: float = 5.0, cap_s: float = 6 * 3600
) -> float:
    """The wait after ``attempts`` failed attempts: 5 s, then four times longer each time
    (20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h), capped at 6 h; ``jitter`` in [0, 1) spreads it
    over +-20% so that endpoints that failed together are not all tried again together."""
    base = min(cap_s, first_s * 4 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * jitter)


def next_attempt_at(
    *,
    first_attempt_at: float,
    now: float,
    attempts: int,
    jitter: float,
    retry_for_s: float,
    retry_after_s: float | None = None,
) -> float | None:
    """When to try again after ``attempts`` failed attempts, or None once the retry window
    (``retry_for_s`` from the first attempt) is spent. A receiver's Retry-After (429, 503) is
    honoured when it asks for longer than our schedule."""
    delay = retry_delay(attempts, jitter)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, 6 * 3600))
    when = now + delay
    return when if when <= first_attempt_at + retry_for_s else None


# --- where we may send ------------------------------------------------------------------------
class UnsafeUrl(ValueError):
    """A webhook URL or address we refuse to call; the message says why, in our words."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart: what the sender connects to and asks for."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent


_HOST = re.compile(r"^[a-z0-9.\-\[\]:]+$")
# NAT64 (RFC 6052) wraps an IPv4 address: judge the address it wraps.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# IETF protocol assignments: CPython 3.11 calls 192.0.0.8 global although nothing public lives here.
_IETF = ipaddress.IPv4Network("192.0.0.0/24")


def check_url(url: str, *, allow_local: bool) -> Target:
    """Whether ``url`` may be registered: https (plain http only on a local stack), a host, no
    credentials, no fragment. Addresses are judged after DNS resolution (``address_refusal``),
    at registration and again before every attempt."""
    if len(url) > 2000:
        raise UnsafeUrl("the URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl("the URL could not be read") from error
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_local and scheme == "http"):
        raise UnsafeUrl("webhook URLs must use https")
    host = (parts.hostname or "").lower()
    if not host or not _HOST.match(host):
        raise UnsafeUrl("the URL names no valid host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must not carry credentials")
    if parts.fragment:
        raise UnsafeUrl("the URL must not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why we refuse to connect to ``address`` (None: it is public). ``is_global`` alone lets
    multicast, some reserved ranges and NAT64-wrapped private addresses through, so each is
    checked (OWASP SSRF Prevention Cheat Sheet, case 2)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "the host resolved to something that is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.is_loopback:
        return None if allow_loopback else "the host resolves to a loopback address"
    if ip.is_link_local:
        return "the host resolves to a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _IETF:
        return "the host resolves to a reserved address"
    if ip.is_private or ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "the host resolves to a private or reserved address"
    return None


def refuse_any(addresses: Iterable[str], *, allow_loopback: bool) -> str | None:
    """The first refusal among every address a host resolves to (A and AAAA): one private
    address among public ones is enough to refuse, as DNS may hand out either."""
    seen = False
    for address in addresses:
        seen = True
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason:
            return reason
    return None if seen else "the host does not resolve"
