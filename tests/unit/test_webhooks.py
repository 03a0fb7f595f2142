"""The pure webhook core: Standard Webhooks signatures, event ids and bodies, the retry
schedule, what an answer means, and which URLs and addresses may be called."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from trackflow.domain import webhooks as w
from trackflow.domain.track import Status, initial_steps
from trackflow.pipeline import flow
from trackflow.pipeline.flow import Move

# The example in the Standard Webhooks spec (and its reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_matches_the_specs_example():
    """Our HMAC of "{id}.{timestamp}.{body}" is the spec's published example signature."""
    assert w.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_rotation_sends_both_signatures_space_separated():
    """During a rotation the header carries the new and the old secret's signatures."""
    new = w.new_secret(bytes(range(32)))
    header = w.signature_header([new, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    first, second = header.split(" ")
    assert first == w.sign(new, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert second == SPEC_SIGNATURE


def test_the_standardwebhooks_package_verifies_our_headers():
    """An independent implementation (PyPI standardwebhooks) accepts what we send, also
    during a rotation, and refuses a body changed by one byte."""
    standardwebhooks = pytest.importorskip("standardwebhooks")
    old, new = w.new_secret(b"a" * 24), w.new_secret(b"b" * 32)
    now = int(datetime.now(UTC).timestamp())
    body = w.event_body("track.published", "2026-01-01T00:00:00Z", {"track_id": "t"})
    headers = w.webhook_headers([new, old], "evt_1", now, body)
    for secret in (new, old):
        assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "track.published"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new).verify(body + b" ", headers)


def test_secrets_are_whsec_and_base64_of_at_least_24_bytes():
    """A secret decodes to the random bytes it was made from; fewer than 24 are refused."""
    secret = w.new_secret(b"\x01" * 32)
    assert secret.startswith("whsec_") and w.decode_secret(secret) == b"\x01" * 32
    with pytest.raises(ValueError):
        w.new_secret(b"short")


def test_event_ids_are_deterministic_per_outcome_and_generation():
    """The same track and outcome give one id; another outcome or a reprocessing another."""
    one = w.event_id("t1", "track.published")
    assert one == w.event_id("t1", "track.published") and "." not in one
    assert one != w.event_id("t1", "track.failed")
    assert one != w.event_id("t1", "track.published", generation="2026-01-01T00:00:00.000Z")
    assert one != w.event_id("t2", "track.published")


def a_track(**over: object) -> dict:
    return {
        "track_id": "t1",
        "owner": "alice",
        "status": str(Status.PUBLISHED),
        "steps": initial_steps(),
        "notifications": {"published": {"state": "sent"}},
        "upload": {"key": "secret/key"},
        **over,
    }


def test_the_body_is_type_timestamp_and_the_public_record():
    """{type, timestamp, data}: the public record, without our bookkeeping."""
    body = json.loads(
        w.event_body("track.published", "2026-01-01T00:00:00Z", w.track_data(a_track()))
    )
    assert body["type"] == "track.published" and body["timestamp"] == "2026-01-01T00:00:00Z"
    assert body["data"]["track_id"] == "t1" and body["data"]["status"] == "published"
    assert "notifications" not in body["data"] and "upload" not in body["data"]


def test_a_body_over_20_kB_leaves_out_the_per_step_detail():
    """The spec advises bodies under ~20 kB: bulky fields go first."""
    data = w.track_data(
        a_track(outputs={f"artwork/{i}.jpg": "s3://b/" + "k" * 200 for i in range(200)})
    )
    body = w.event_body("track.published", "now", data)
    assert len(body) < w.MAX_BODY_BYTES
    assert "outputs" not in json.loads(body)["data"]


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, w.Answer.DELIVERED),
        (204, w.Answer.DELIVERED),
        (301, w.Answer.RETRY),
        (404, w.Answer.RETRY),
        (410, w.Answer.GONE),
        (429, w.Answer.RETRY),
        (500, w.Answer.RETRY),
        (None, w.Answer.RETRY),
    ],
)
def test_answers(status: int | None, answer: w.Answer):
    """2xx ends a delivery, 410 disables the endpoint, anything else (redirects too) retries."""
    assert w.judge_answer(status) is answer


def test_the_retry_schedule_grows_exponentially_with_jitter_and_a_cap():
    """5 s, then four times longer each time, +-20% jitter, never over 6 h."""
    assert [w.retry_delay(n, 0.5) for n in (1, 2, 3)] == [5.0, 20.0, 80.0]
    assert w.retry_delay(1, 0.0) == pytest.approx(4.0) and w.retry_delay(1, 0.999) < 6.0
    assert w.retry_delay(30, 0.999) < 6 * 3600 * 1.2


def test_retries_stop_when_the_window_is_spent():
    """The next attempt falls inside the retry window, or there is none."""
    day = 24 * 3600
    assert w.next_attempt_at(
        first_attempt_at=0, now=10, attempts=1, jitter=0.5, retry_for_s=day
    ) == pytest.approx(15)
    assert (
        w.next_attempt_at(first_attempt_at=0, now=day - 1, attempts=12, jitter=0.5, retry_for_s=day)
        is None
    )


def test_a_long_retry_after_is_honoured():
    """A receiver's Retry-After longer than our schedule is waited for."""
    at = w.next_attempt_at(
        first_attempt_at=0, now=0, attempts=1, jitter=0.5, retry_for_s=86400, retry_after_s=120
    )
    assert at == 120


@pytest.mark.parametrize(
    ("url", "allow_local", "ok"),
    [
        ("https://hooks.example.com/in?x=1", False, True),
        ("http://hooks.example.com/in", False, False),
        ("http://127.0.0.1:9000/in", True, True),
        ("ftp://hooks.example.com/", True, False),
        ("https://user:pw@hooks.example.com/", False, False),
        ("https:///nohost", False, False),
        ("https://hooks.example.com/#frag", False, False),
        ("https://hooks.example.com:99999/", False, False),
    ],
)
def test_url_rules(url: str, allow_local: bool, ok: bool):
    """https only (http only on local stacks), a host, no credentials or fragment."""
    if ok:
        assert w.check_url(url, allow_local=allow_local).host
    else:
        with pytest.raises(w.UnsafeUrl):
            w.check_url(url, allow_local=allow_local)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",  # multicast: is_global says True on 3.11
        "192.0.0.8",  # IETF assignments: is_global says True on 3.11
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        "::ffff:10.0.0.1",  # IPv4-mapped
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(address: str):
    """Every non-public address is refused outside local mode."""
    assert w.address_refusal(address, allow_loopback=False)


def test_loopback_is_allowed_only_when_the_setting_says_so():
    """Local stacks and tests may reach 127.0.0.1, never a private network."""
    assert w.address_refusal("127.0.0.1", allow_loopback=True) is None
    assert w.address_refusal("::ffff:127.0.0.1", allow_loopback=True) is None
    assert w.address_refusal("10.0.0.1", allow_loopback=True)
    assert w.address_refusal("93.184.215.14", allow_loopback=False) is None
    assert w.address_refusal("2606:4700::1111", allow_loopback=False) is None


def test_one_private_address_among_public_ones_refuses_the_host():
    """A host whose A/AAAA records mix public and private addresses is refused."""
    assert w.refuse_any(["93.184.215.14", "10.0.0.1"], allow_loopback=False)
    assert w.refuse_any([], allow_loopback=False) == "the host does not resolve"
    assert w.refuse_any(["93.184.215.14"], allow_loopback=False) is None


@pytest.mark.parametrize(
    ("move", "event"),
    [
        (Move.PUBLISH, "track.published"),
        (Move.REJECT, "track.rejected"),
        (Move.REVIEW_REJECT, "track.rejected"),
        (Move.FAIL, "track.failed"),
        (Move.HOLD, "track.held_for_review"),
        (Move.ADMIT, None),
        (Move.APPROVE, None),
    ],
)
def test_the_engine_decides_one_event_per_outcome_move(move: Move, event: str | None):
    """The winner of an outcome's move records its event; other moves record none."""
    track = {"track_id": "t", "status": "processing", "steps": initial_steps(), "stages": {}}
    decision = flow.on_moved(move, track)
    assert decision.events == ((event,) if event else ())
