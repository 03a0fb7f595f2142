"""Per-user limits: what each action counts, and whether it may go ahead.

Every limit but one is a fixed window (an hour or a day, aligned to the epoch) per subject: a
user, a track, or a recipient address. Fixed windows rather than a token bucket: each is one
counter that a DynamoDB transaction can condition on its room, so every API replica shares it
and none can take the last unit twice, and the wait it asks for is exact (the window's end).
Their known slack, up to twice a limit across a window's boundary, is bounded and harmless at
these sizes.

Uploads in flight are counted, not kept. A counter on the user, raised on each upload and
lowered when a track ends, would have to be lowered on every path that ends one (published,
rejected, failed, the sweeper's expiry, a delete) and raised again by a reprocess, in code far
from the API, and would drift for good at the first one missed. Instead the API counts the
caller's tracks that have not ended among those created in the last ``in_flight_window_s``: a
Query of the tracks' by-owner index from that moment, counted by DynamoDB. It is exact for
those tracks, and its cost is bounded by the daily upload limit. It leaves out a track older
than that which still has not ended: one held for a reviewer (waiting for us, not costing the
uploader's share of workers) or one reprocessed (bounded by its own limit). Two requests of one
user racing may both see the last slot free; the hourly and daily windows, being
transactional, bound what such races can add.

The functions here are pure: the limits an account has, the windows an action counts, and
the decision from the counts. :class:`Limiter` is the thin shell that reads and writes them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from trackflow.adapters.state.ratelimit import Take
from trackflow.api.errors import ApiError
from trackflow.settings import Settings

__all__ = [
    "IN_FLIGHT_RETRY_S",
    "Counters",
    "Limiter",
    "Quota",
    "Refusal",
    "Window",
    "check",
    "check_in_flight",
    "profile_windows",
    "quota_for",
    "reprocess_windows",
    "session_windows",
    "upload_windows",
    "verification_windows",
]

HOUR = 3600
DAY = 24 * HOUR
# When a track ends is not known in advance; a short track takes about this long, so a client
# that waits this much finds a slot free if its uploads are moving at all.
IN_FLIGHT_RETRY_S = 60
# Transactions lost to another replica taking from the same window, before giving up
_ATTEMPTS = 5


@dataclass(frozen=True)
class Window:
    """One fixed window of one limit: ``amount`` more of ``counted`` for ``subject``."""

    name: str  # part of the counter's key: uploads, upload_bytes, reprocess, ...
    subject: str  # whose: a user id, a track id, an address's digest
    period_s: int
    limit: int
    counted: str  # what the limit counts, in words: "uploads an hour"
    amount: int = 1

    def start(self, now: float) -> int:
        return int(now // self.period_s) * self.period_s

    def ends_at(self, now: float) -> int:
        return self.start(now) + self.period_s

    def key(self, now: float) -> str:
        return f"limit#{self.name}#{self.subject}#{self.period_s}#{self.start(now)}"


@dataclass(frozen=True)
class Refusal:
    """Over a limit: how long to wait (the Retry-After) and why, in our words."""

    retry_after_s: int
    message: str


@dataclass(frozen=True)
class Quota:
    """One account's upload and reprocess limits."""

    uploads_per_hour: int
    uploads_per_day: int
    upload_bytes_per_day: int
    uploads_in_flight: int
    reprocess_per_track_per_hour: int


def quota_for(settings: Settings, profile: Mapping[str, Any] | None, admin: bool) -> Quota | None:
    """The account's limits: none for administrators, the priority factor's multiple for
    priority accounts, the settings' for everyone else."""
    if admin:
        return None
    factor = settings.priority_limits_factor if (profile or {}).get("priority") else 1
    return Quota(
        uploads_per_hour=settings.limit_uploads_per_hour * factor,
        uploads_per_day=settings.limit_uploads_per_day * factor,
        upload_bytes_per_day=settings.limit_upload_bytes_per_day * factor,
        uploads_in_flight=settings.limit_uploads_in_flight * factor,
        reprocess_per_track_per_hour=settings.limit_reprocess_per_track_per_hour * factor,
    )


def upload_windows(quota: Quota, user_id: str, size: int) -> list[Window]:
    """What a new upload of ``size`` declared bytes counts."""
    return [
        Window("uploads", user_id, HOUR, quota.uploads_per_hour, "uploads an hour"),
        Window("uploads", user_id, DAY, quota.uploads_per_day, "uploads a day"),
        Window(
            "upload_bytes", user_id, DAY, quota.upload_bytes_per_day, "bytes uploaded a day", size
        ),
    ]


def reprocess_windows(quota: Quota, track_id: str) -> list[Window]:
    return [
        Window(
            "reprocess",
            track_id,
            HOUR,
            quota.reprocess_per_track_per_hour,
            "reprocessings of a track an hour",
        )
    ]


def session_windows(settings: Settings, user: str) -> list[Window]:
    return [Window("sessions", user, HOUR, settings.limit_sessions_per_hour, "sign-ins an hour")]


def profile_windows(settings: Settings, user_id: str) -> list[Window]:
    return [
        Window(
            "profile",
            user_id,
            HOUR,
            settings.limit_profile_changes_per_hour,
            "profile changes an hour",
        )
    ]


def address_digest(address: str) -> str:
    """An address as a counter's subject: the same for any spelling of its case, and no
    address kept in the table."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def verification_windows(settings: Settings, address: str) -> list[Window]:
    """What sending a verification link to ``address`` counts: the recipient's daily cap,
    whoever asks for it."""
    return [
        Window(
            "verify_email",
            address_digest(address),
            DAY,
            settings.email_verifications_per_address_per_day,
            "verification emails to one address a day",
        )
    ]


def check(windows: Sequence[Window], counts: Mapping[str, int], now: float) -> Refusal | None:
    """None if every window has room for its amount, else when the last full one frees up."""
    full = [w for w in windows if counts.get(w.key(now), 0) + w.amount > w.limit]
    if not full:
        return None
    latest = max(full, key=lambda w: w.ends_at(now))  # every window must have room
    retry = max(1, math.ceil(latest.ends_at(now) - now))
    return Refusal(
        retry,
        f"you have reached the limit of {latest.limit} {latest.counted}; "
        f"try again in {retry} seconds",
    )


def check_in_flight(count: int, limit: int) -> Refusal | None:
    """None if one more upload keeps the caller within their uploads in flight."""
    if count < limit:
        return None
    return Refusal(
        IN_FLIGHT_RETRY_S,
        f"you have {count} uploads that have not finished processing, the most we take at "
        "once; upload more once some have finished",
    )


def _too_many(refusal: Refusal) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        refusal.message,
        headers={"Retry-After": str(refusal.retry_after_s)},
    )


class Counters(Protocol):
    """Where windows are counted: ``trackflow.adapters.state.ratelimit.FixedWindows``."""

    def counts(self, keys: Sequence[str]) -> dict[str, int]: ...

    def take(self, takes: Sequence[Take]) -> bool: ...


class Limiter:
    """Counts actions against their windows in DynamoDB, refusing (429) before anything is
    counted when one would pass its limit."""

    def __init__(
        self,
        windows: Counters,
        in_flight: Callable[[str, float], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._windows = windows
        self._in_flight = in_flight  # (owner, since epoch s) -> tracks not ended
        self._clock = clock

    def take(self, windows: Sequence[Window]) -> None:
        """Count one action in every window, or raise 429 with nothing counted."""
        if not windows:
            return
        for _ in range(_ATTEMPTS):
            now = self._clock()
            refusal = check(windows, self._windows.counts([w.key(now) for w in windows]), now)
            if refusal is not None:
                raise _too_many(refusal)
            takes = [Take(w.key(now), w.amount, w.limit, w.ends_at(now)) for w in windows]
            if self._windows.take(takes):
                return
        raise _too_many(Refusal(1, "too many requests at once; try again in a second"))

    def upload(self, user_id: str, quota: Quota | None, size: int, window_s: int) -> None:
        """Admit one more upload of ``size`` declared bytes, or raise 429."""
        if quota is None:
            return
        refusal = check_in_flight(
            self._in_flight(user_id, self._clock() - window_s), quota.uploads_in_flight
        )
        if refusal is not None:
            raise _too_many(refusal)
        self.take(upload_windows(quota, user_id, size))

    def reprocess(self, track_id: str, quota: Quota | None) -> None:
        if quota is not None:
            self.take(reprocess_windows(quota, track_id))
