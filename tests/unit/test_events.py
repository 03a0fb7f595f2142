"""The consumer's event parser: every envelope S3 events arrive in, and nothing else."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trackflow.consumer.events import ObjectCreated, PoisonMessage, parse_message
from trackflow.consumer.pinning import same_object


def s3_event(
    key: str,
    *,
    size: int = 1234,
    version: str = "2.1",
    name: str = "ObjectCreated:Post",
    bucket: str = "uploads",
) -> dict:
    return {
        "Records": [
            {
                "eventVersion": version,
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T10:00:00.000Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": "abc",
                        "sequencer": "0055AED6DCD90281E5",
                    },
                },
            }
        ]
    }


def test_a_plain_s3_notification():
    [event] = parse_message(json.dumps(s3_event("uploads/alice/t/My Song+1 100%.mp3")))
    assert event.key == "uploads/alice/t/My Song+1 100%.mp3"  # decoded once, here
    assert (event.bucket, event.size, event.etag) == ("uploads", 1234, "abc")
    assert event.event_name == "ObjectCreated:Post"


def test_test_events_and_removals_announce_nothing():
    assert parse_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert parse_message(json.dumps(s3_event("k", name="ObjectRemoved:Delete"))) == []


def test_sns_wrapped_and_eventbridge_shapes():
    sns = {"Type": "Notification", "Message": json.dumps(s3_event("uploads/a/b/c.mp3"))}
    assert parse_message(json.dumps(sns))[0].key == "uploads/a/b/c.mp3"
    bridge = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-11-23T10:00:00Z",
        "detail": {
            "bucket": {"name": "uploads"},
            "object": {"key": "uploads/a/b/c d.mp3", "size": 5, "etag": "e"},
            "reason": "PutObject",
        },
    }
    [event] = parse_message(json.dumps(bridge))
    assert (event.key, event.size) == ("uploads/a/b/c d.mp3", 5)


def test_the_version_an_event_names_is_read_from_every_envelope():
    """S3's ``object.versionId`` and EventBridge's ``version-id`` name the object admitted."""
    record = s3_event("uploads/a/b/c.mp3")
    record["Records"][0]["s3"]["object"]["versionId"] = "3HL4kqtJvjVBH40Nrjfkd"
    [event] = parse_message(json.dumps(record))
    assert (event.version_id, event.sequencer) == ("3HL4kqtJvjVBH40Nrjfkd", "0055AED6DCD90281E5")
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": "uploads"},
            "object": {"key": "uploads/a/b/c.mp3", "size": 5, "etag": "e", "version-id": "v7"},
        },
    }
    assert parse_message(json.dumps(bridge))[0].version_id == "v7"
    assert parse_message(json.dumps(s3_event("uploads/a/b/c.mp3")))[0].version_id is None


def _event(etag: str | None, version_id: str | None = None) -> ObjectCreated:
    return ObjectCreated("uploads", "k", 1, etag, "ObjectCreated:Post", None, None, version_id)


@pytest.mark.parametrize(
    ("event", "admitted", "same"),
    [
        (_event("abc", "v1"), {"etag": "abc", "version_id": "v1"}, True),
        (_event("abc", "v2"), {"etag": "abc", "version_id": "v1"}, False),  # same bytes, again
        (_event("def"), {"etag": "abc", "version_id": "v1"}, False),  # moto: no version id
        (_event('"abc"'), {"etag": "abc", "version_id": "v1"}, True),  # quoted or bare
        (_event("def", "null"), {"etag": "abc", "version_id": None}, False),
        (_event(None), {"etag": "abc", "version_id": "v1"}, True),  # hand-made: a duplicate
        (_event("def"), {"etag": "abc"}, False),  # admitted before versions were pinned
    ],
    ids=["same", "new-version", "new-etag", "quoted", "unversioned", "no-etag", "legacy"],
)
def test_an_event_is_told_apart_from_the_admitted_object(
    event: ObjectCreated, admitted: dict, same: bool
):
    """Version ids decide when both are known, else ETags; an event naming neither is taken
    for a duplicate of the admitted one."""
    assert same_object(event, admitted) is same


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "42",
        json.dumps({"hello": "world"}),
        json.dumps({"Records": []}),
        json.dumps({"Records": ["x"]}),
        json.dumps(s3_event("k", version="3.0")),
        json.dumps(
            {
                "Records": [
                    {
                        "eventVersion": "2.1",
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "s3": {},
                    }
                ]
            }
        ),
        json.dumps(s3_event("k", size=-1)),
        json.dumps({"Type": "Notification", "Message": {"not": "a string"}}),
    ],
    ids=[
        "text",
        "list",
        "number",
        "unknown-shape",
        "no-records",
        "bad-record",
        "unknown-major-version",
        "missing-object",
        "negative-size",
        "bad-sns",
    ],
)
def test_poison_is_recognised(body: str):
    with pytest.raises(PoisonMessage):
        parse_message(body)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda k: k.strip("/")))
def test_any_key_round_trips(key: str):
    """Spaces, '+', '%', emoji, either Unicode normal form: the key comes back exactly."""
    [event] = parse_message(json.dumps(s3_event(key)))
    assert event.key == key


def _mutations(event: dict) -> st.SearchStrategy:
    leaves = st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=20),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )
    paths = [
        ("Records", 0, "eventVersion"),
        ("Records", 0, "eventSource"),
        ("Records", 0, "eventName"),
        ("Records", 0, "s3"),
        ("Records", 0, "s3", "object"),
        ("Records", 0, "s3", "object", "key"),
        ("Records", 0, "s3", "object", "size"),
        ("Records", 0, "s3", "bucket"),
        ("Records", 0, "s3", "bucket", "name"),
        ("Records", 0),
        ("Records",),
    ]
    return st.tuples(st.sampled_from(paths), leaves)


@settings(max_examples=500, deadline=None)
@given(_mutations(s3_event("uploads/a/b/c.mp3")))
def test_mutated_events_parse_or_are_poison_never_crash(mutation):
    path, value = mutation
    event = s3_event("uploads/a/b/c.mp3")
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    try:
        events = parse_message(json.dumps(event))
    except PoisonMessage:
        return
    for parsed in events:
        assert isinstance(parsed.key, str) and isinstance(parsed.size, int)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_poison_or_nothing(body: bytes):
    with contextlib.suppress(PoisonMessage):
        assert parse_message(body) == []
