"""Per-user limits as pure decisions: the windows an action counts, and whether it fits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from trackflow.adapters.state.ratelimit import Take
from trackflow.api.errors import ApiError
from trackflow.api.limits import (
    IN_FLIGHT_RETRY_S,
    Limiter,
    Window,
    address_digest,
    check,
    check_in_flight,
    quota_for,
    upload_windows,
    verification_windows,
)
from trackflow.settings import Settings

HOUR = 3600
DAY_S = 24 * HOUR
NOW = 1_700_000_000.0 + 1234.5  # 1234.5 s into an hour (1_700_000_000 is a multiple of 400)


def _settings(**fields: object) -> Settings:
    return Settings(**fields)  # type: ignore[arg-type]


def test_a_window_is_aligned_and_keyed_by_its_start():
    """Windows start on multiples of their period, so every replica names the same counter."""
    w = Window("uploads", "ann", HOUR, 3, "uploads an hour")
    assert w.start(NOW) % HOUR == 0 and w.start(NOW) <= NOW < w.ends_at(NOW)
    assert w.key(NOW) == w.key(w.start(NOW)) != w.key(w.ends_at(NOW))


def test_an_action_within_every_window_goes_ahead():
    """Room in every window: no refusal."""
    w = Window("uploads", "ann", HOUR, 3, "uploads an hour")
    assert check([w], {}, NOW) is None
    assert check([w], {w.key(NOW): 2}, NOW) is None


def test_a_full_window_refuses_until_its_end():
    """At the limit: refused, Retry-After the seconds left in the window, in our words."""
    w = Window("uploads", "ann", HOUR, 3, "uploads an hour")
    refusal = check([w], {w.key(NOW): 3}, NOW)
    assert refusal is not None
    assert refusal.retry_after_s == w.ends_at(NOW) - int(NOW)  # rounded up to whole seconds
    assert "3 uploads an hour" in refusal.message


def test_bytes_count_by_amount_and_the_latest_full_window_sets_the_wait():
    """A declared size that would pass the daily bytes refuses, with the day's end as wait."""
    quota = quota_for(_settings(limit_upload_bytes_per_day=1000), None, admin=False)
    assert quota is not None
    hour, day, size = upload_windows(quota, "ann", 400)
    counts = {hour.key(NOW): 0, day.key(NOW): 0, size.key(NOW): 700}
    refusal = check([hour, day, size], counts, NOW)
    assert refusal is not None and "bytes uploaded a day" in refusal.message
    assert refusal.retry_after_s == size.ends_at(NOW) - int(NOW)
    assert check([hour, day, size], {size.key(NOW): 600}, NOW) is None  # 600 + 400 fits


def test_administrators_have_no_limits_and_priority_accounts_larger_ones():
    """No quota for administrators; the priority factor multiplies every upload limit."""
    settings = _settings(limit_uploads_per_hour=10, priority_limits_factor=4)
    assert quota_for(settings, {"priority": True}, admin=True) is None
    plain = quota_for(settings, {"priority": False}, admin=False)
    vip = quota_for(settings, {"priority": True}, admin=False)
    assert plain is not None and vip is not None
    assert (plain.uploads_per_hour, vip.uploads_per_hour) == (10, 40)
    assert vip.reprocess_per_track_per_hour == 4 * plain.reprocess_per_track_per_hour


def test_uploads_in_flight_are_refused_at_the_limit_with_a_fixed_wait():
    """One more upload is allowed below the in-flight limit, refused at it."""
    assert check_in_flight(1, 2) is None
    refusal = check_in_flight(2, 2)
    assert refusal is not None and refusal.retry_after_s == IN_FLIGHT_RETRY_S


def test_a_recipients_cap_is_one_counter_whatever_the_case_and_keeps_no_address():
    """Victim@X and victim@x share a counter, and the key holds a digest, not the address."""
    settings = _settings()
    [a] = verification_windows(settings, "Victim@Example.org")
    [b] = verification_windows(settings, "victim@example.org")
    assert a.key(NOW) == b.key(NOW)
    assert "victim" not in a.key(NOW).lower()
    assert address_digest("victim@example.org") in a.key(NOW)


class RacingCounters:
    """Counters in a dict; the first ``lost`` takes fail as if another replica won the race."""

    def __init__(self, lost: int = 0) -> None:
        self.held: dict[str, int] = {}
        self.lost = lost

    def counts(self, keys: Sequence[str]) -> dict[str, int]:
        return {k: self.held.get(k, 0) for k in keys}

    def take(self, takes: Sequence[Take]) -> bool:
        if self.lost:
            self.lost -= 1
            return False
        for t in takes:
            self.held[t.key] = self.held.get(t.key, 0) + t.amount
        return True


def test_the_limiter_refuses_with_429_and_retry_after_and_counts_nothing():
    """Over the limit: ApiError 429 rate_limited with Retry-After; the counters unchanged."""
    counters = RacingCounters()
    limiter = Limiter(counters, lambda owner, since: 0, clock=lambda: NOW)
    w = Window("sessions", "ann", HOUR, 1, "sign-ins an hour")
    limiter.take([w])
    with pytest.raises(ApiError) as refused:
        limiter.take([w])
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert int(refused.value.headers["Retry-After"]) == w.ends_at(NOW) - int(NOW)
    assert counters.held == {w.key(NOW): 1}


def test_the_limiter_reads_again_after_losing_a_race():
    """A transaction lost to another replica is retried from fresh counts."""
    counters = RacingCounters(lost=2)
    limiter = Limiter(counters, lambda owner, since: 0, clock=lambda: NOW)
    w = Window("sessions", "ann", HOUR, 5, "sign-ins an hour")
    limiter.take([w])
    assert counters.held == {w.key(NOW): 1} and counters.lost == 0


def test_uploads_in_flight_refuse_before_any_window_is_counted():
    """At the in-flight limit the windows stay untouched; administrators are not counted."""
    counters = RacingCounters()
    asked: list[float] = []

    def in_flight(owner: str, since: float) -> int:
        asked.append(since)
        return 20

    limiter = Limiter(counters, in_flight, clock=lambda: NOW)
    quota = quota_for(_settings(limit_uploads_in_flight=20), None, admin=False)
    with pytest.raises(ApiError) as refused:
        limiter.upload("ann", quota, 1000, window_s=DAY_S)
    assert refused.value.headers["Retry-After"] == str(IN_FLIGHT_RETRY_S)
    assert counters.held == {} and asked == [NOW - DAY_S]
    limiter.upload("admin", None, 1000, window_s=DAY_S)  # no quota: nothing asked or counted
    assert len(asked) == 1 and counters.held == {}
