"""Fault injection on the real stack: nothing lost, nothing stuck, nothing done twice.

`make test` runs each scenario at a small, bounded scale; `make chaos` runs the same scenarios
at full scale (TRACKFLOW_CHAOS_SCALE=full). Every scenario ends by checking, for every upload,
a terminal state; for published ones every output present and valid, exactly one email,
exactly one feed entry per follower and one search document.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import audio, badinputs
from tests.support.stack import client_for, emails_to, object_bytes, upload, wait_for
from trackflow.adapters import aws
from trackflow.adapters.search import SqliteSearch
from trackflow.adapters.state.social import SocialStore
from trackflow.adapters.state.tracks import TrackStore
from trackflow.cli.client import ApiClient, ApiError
from trackflow.domain.track import TERMINAL
from trackflow.media.samples import SampleTrack, write_track
from trackflow.operations.deadletters import counts, peek, redrive
from trackflow.settings import Settings, WorkerGroup
from trackflow.tasks.recovery import reconcile, reprocess, sweep

FULL = os.environ.get("TRACKFLOW_CHAOS_SCALE") == "full"


def scale(bounded: int, full: int) -> int:
    return full if FULL else bounded


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.usefixtures("stack"),
    pytest.mark.timeout(scale(600, 4200)),  # the full burst alone takes most of an hour
]


class World:
    """One scenario's users: an uploader per track (so emails count per track) and followers."""

    def __init__(self, settings: Settings, followers: int = 0) -> None:
        self.settings = settings
        self.run = uuid.uuid4().hex[:6]
        self.fans = [f"fan-{self.run}-{n:03d}" for n in range(followers)]
        self.tracks: dict[str, str] = {}  # track id -> uploader

    def uploader(self, n: int) -> ApiClient:
        name = f"up-{self.run}-{n:03d}"
        client = client_for(self.settings, name)
        client.request("GET", "/v1/me")
        for fan in self.fans:
            client_for(self.settings, fan).request("POST", f"/v1/users/{name}/followers")
        return client

    def upload(self, n: int, path: Path) -> str:
        client = self.uploader(n)
        track_id = upload(client, path)
        self.tracks[track_id] = f"up-{self.run}-{n:03d}"
        return track_id

    def finish(self, timeout_s: float = 600) -> list[dict[str, Any]]:
        """Wait for every track to end, then check the invariants; returns the records."""
        store = TrackStore(aws.client("dynamodb", self.settings), self.settings.table("tracks"))
        deadline = time.monotonic() + timeout_s
        records = []
        for track_id in self.tracks:
            record = wait_for(
                lambda t=track_id: (r := store.get(t)) and r["status"] in TERMINAL and r,
                timeout_s=max(1, deadline - time.monotonic()),
                interval_s=1,
            )
            records.append(record)
        search = SqliteSearch(Path(self.settings.data_dir) / "search.sqlite")
        social = SocialStore(
            aws.client("dynamodb", self.settings),
            self.settings.table("follows"),
            self.settings.table("feeds"),
        )
        for record in records:
            owner = self.tracks[record["track_id"]]
            wait_for(
                lambda o=owner: emails_to(self.settings, f"{o}@users.trackflow.local"), timeout_s=60
            )
            assert len(emails_to(self.settings, f"{owner}@users.trackflow.local")) == 1, owner
            if record["status"] != "published":
                continue
            for name, uri in record["outputs"].items():
                assert object_bytes(self.settings, uri), name
            assert search.count(record["track_id"]) == 1
            for fan in self.fans:
                entries, _ = social.feed(fan, limit=100)
                assert [e["track_id"] for e in entries].count(record["track_id"]) == 1, fan
        statuses = Counter(r["status"] for r in records)
        print(
            f"\n{len(records)} uploads, all terminal: {dict(statuses)}; each with exactly one "
            f"email, and if published one search document and one feed entry for each of "
            f"{len(self.fans)} followers: no duplicates"
        )
        return records


# Every song of the session is different music: a published track joins the copyright
# catalogue, and the same music uploaded again by someone else would rightly be rejected.
_SEEDS = itertools.count(20_000)


def song(tmp_path: Path, n: int, seconds: float = 8.0) -> Path:
    return write_track(
        SampleTrack(f"Chaos {n}", "Chaos Band", seconds=seconds, seed=next(_SEEDS)),
        tmp_path / f"chaos{n}.mp3",
    )


def events_queue(settings: Settings) -> str:
    sqs = aws.client("sqs", settings)
    return sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]


# 1 --------------------------------------------------------------------------------------------
def test_duplicate_and_concurrent_events_start_one_workflow(settings: Settings, tmp_path: Path):
    world = World(settings, followers=3)
    track_ids = [world.upload(n, song(tmp_path, n, 6)) for n in range(scale(2, 10))]
    store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    sqs = aws.client("sqs", settings)
    for track_id in track_ids:  # while the first events are still being admitted
        key = store.get(track_id)["upload"]["key"]
        record = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Post",
            "s3": {
                "bucket": {"name": settings.uploads_bucket},
                "object": {"key": key.replace(" ", "+"), "size": 1},
            },
        }
        body = json.dumps({"Records": [record]})
        sqs.send_message_batch(
            QueueUrl=events_queue(settings),
            Entries=[{"Id": str(n), "MessageBody": body} for n in range(4)],
        )
        sqs.send_message(QueueUrl=events_queue(settings), MessageBody=body)
    records = world.finish()
    assert all(r["status"] == "published" for r in records)
    assert all(s["attempts"] == 1 for r in records for s in r["steps"].values())


# 2 --------------------------------------------------------------------------------------------
def _pool_child_running_ffmpeg(stack: Any, marker: str) -> psutil.Process | None:
    """The worker's pool process whose ffmpeg has ``marker`` in its command line."""
    main = next(r for r in stack.roles if r.name == "worker-cpu-standard").process
    for child in psutil.Process(main.pid).children():
        try:
            if any(marker in " ".join(g.cmdline()) for g in child.children()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_worker_killed_mid_step_is_replaced_and_the_track_published(
    settings: Settings, tmp_path: Path, stack: Any
):
    """SIGKILL the process running a heavy step, at several points: the step comes back, and
    no partial output passes for a finished one."""
    world = World(settings, followers=2)
    world.upload(0, song(tmp_path, 0, seconds=scale(40, 90)))
    # ffmpeg's command line tells the steps apart: analysis, normalisation, an MP3 encode
    for marker in ("[pcm]", "precision=float", "libmp3lame"):
        victim = wait_for(
            lambda m=marker: _pool_child_running_ffmpeg(stack, m), timeout_s=180, interval_s=0.01
        )
        victim.send_signal(signal.SIGKILL)
    [record] = world.finish()
    assert record["status"] == "published", record.get("error")
    assert sum(s["attempts"] for s in record["steps"].values()) > len(record["steps"])
    for bitrate in (128, 192, 320):  # every rendition is whole
        assert record["renditions"][str(bitrate)]["duration_s"] == pytest.approx(
            scale(40, 90), abs=0.05
        )
    assert not stack.dead(), "a pool process died, not the worker: the worker must live on"


# 3 --------------------------------------------------------------------------------------------
def test_a_worker_stopped_by_sigterm_hands_its_work_back_at_once(
    settings: Settings, tmp_path: Path, stack: Any
):
    """Scale-in: SIGTERM the worker in the middle of a step; another worker finishes it long
    before the message's visibility timeout would have brought it back."""
    role = next(r for r in stack.roles if r.name == "worker-cpu-standard")
    world = World(settings)
    world.upload(0, song(tmp_path, 0, seconds=scale(60, 120)))
    wait_for(lambda: _pool_child_running_ffmpeg(stack, "precision=float"), 180, interval_s=0.01)
    stopped_at = time.monotonic()
    role.process.send_signal(signal.SIGTERM)
    role.process.wait(timeout=60)
    stack._spawn(role)  # the replacement the orchestrator would start
    [record] = world.finish()
    took = time.monotonic() - stopped_at
    visibility = settings.visibility_timeouts[settings.queue(WorkerGroup.CPU)]
    assert record["status"] == "published"
    assert took < visibility / 2, f"{took:.0f} s: the message waited for its visibility timeout"


# 4 --------------------------------------------------------------------------------------------
def test_transient_aws_faults_lose_and_duplicate_nothing(
    settings: Settings, tmp_path: Path, faults: Any
):
    world = World(settings, followers=2)
    paths = [song(tmp_path, n, 6) for n in range(scale(3, 12))]
    injected = faults(**{"500": 0.02, "503": 0.02, "throttle": 0.03, "drop": 0.01, "delay": 0.03})
    for n, path in enumerate(paths):
        world.upload(n, path)
    records = world.finish(timeout_s=900)
    injected = faults()
    print(f"\nfaults injected: {injected['injected']} in {injected['forwarded']} requests")
    assert sum(injected["injected"].values()) > 10
    assert all(r["status"] == "published" for r in records), [r.get("error") for r in records]


# 5 --------------------------------------------------------------------------------------------
POISON = [
    "this is not json",
    json.dumps({"unknown": "shape"}),
    json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "3.0",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}},
                }
            ]
        }
    ),
    json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": "x"},
                        "object": {"key": "elsewhere/a.mp3", "size": 5},
                    },
                }
            ]
        }
    ),
]


def test_poison_messages_end_in_the_dead_letter_queue_and_good_ones_go_through(
    settings: Settings, tmp_path: Path, stack: Any
):
    sqs = aws.client("sqs", settings)
    before = counts(settings)[settings.events_queue]
    world = World(settings)
    for body in POISON:
        sqs.send_message(QueueUrl=events_queue(settings), MessageBody=body)
    world.upload(0, song(tmp_path, 0, 6))
    for body in POISON:
        sqs.send_message(QueueUrl=events_queue(settings), MessageBody=body)
    [record] = world.finish()
    assert record["status"] == "published"
    wait_for(
        lambda: counts(settings)[settings.events_queue] >= before + 2 * len(POISON), timeout_s=120
    )
    letters = peek(settings, settings.events_queue, limit=50)
    assert any("not json" in letter.summary for letter in letters)
    # ops can replay them once fixed; these never will be, so they come back to the DLQ
    assert redrive(settings, settings.events_queue, limit=2) == 2
    wait_for(
        lambda: counts(settings)[settings.events_queue] >= before + 2 * len(POISON), timeout_s=120
    )
    assert not stack.dead(), "the consumer must outlive every message"


# 6 --------------------------------------------------------------------------------------------
def test_bad_inputs_fail_with_their_code_without_retries(settings: Settings, tmp_path: Path):
    source = audio.music(tmp_path / "source.wav", seconds=4.0)
    world = World(settings)
    expected = {}
    for n, (name, (make, code)) in enumerate(badinputs.CORPUS.items()):
        folder = tmp_path / f"bad{n}"
        folder.mkdir()
        path = make(folder, source)
        client = world.uploader(n)
        if path.stat().st_size:
            created = client.create_upload(path, "audio/mpeg")
            client.send_file(created["upload"], path)
        else:
            # the API refuses an empty file up front, and S3 an empty body to the policy's
            # content-length-range; an empty object that got there anyway must still fail
            with pytest.raises(ApiError, match="empty_file"):
                client.create_upload(path, "audio/mpeg")
            created = client.request(
                "POST", "/v1/uploads", json={"filename": path.name, "content_type": "audio/mpeg"}
            )
            aws.client("s3", settings).put_object(
                Bucket=settings.uploads_bucket, Key=created["upload"]["key"], Body=b""
            )
        world.tracks[created["track_id"]] = f"up-{world.run}-{n:03d}"
        expected[created["track_id"]] = (name, code)
    records = world.finish()
    assert len(records) >= 25
    outcomes = {expected[r["track_id"]][0]: (r["status"], r.get("error")) for r in records}
    wrong = {
        name: outcome
        for name, outcome in outcomes.items()
        if outcome[0] != "failed"
        or outcome[1]["code"] != badinputs.CORPUS[name][1]
        # a fault of the upload is the input gate's, whichever parallel step met it first
        or outcome[1].get("step") not in ("input_gate", None)
    }
    assert not wrong, wrong
    for record in records:
        name, code = expected[record["track_id"]]
        assert max(s["attempts"] for s in record["steps"].values()) <= 1, name
        head = aws.client("s3", settings).head_object(
            Bucket=settings.uploads_bucket, Key=record["source"]["key"]
        )
        assert head["ContentLength"] == record["source"]["size"]  # the original is kept


# 7 --------------------------------------------------------------------------------------------
def test_the_sweeper_resumes_a_track_whose_messages_were_lost(settings: Settings, tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    world = World(settings)
    track_id = world.upload(0, song(tmp_path, 0, 6))
    store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    wait_for(lambda: store.get(track_id)["status"] == "published", timeout_s=120)
    # now lose its publication: it looks as if the messages after the renditions vanished
    store.transition(track_id, "processing", allowed_from=["published"])
    for name in ("index_track", "publish_feed", "notify_uploader"):
        store.end_step(track_id, name, "running")
    report = sweep(settings, now=datetime.now(UTC) + timedelta(seconds=settings.stuck_after_s + 60))
    assert track_id in report.resumed
    [record] = world.finish()
    assert record["status"] == "published" and record["resumes"] == 1


def test_reconcile_admits_an_upload_whose_event_never_came(settings: Settings, tmp_path: Path):
    s3 = aws.client("s3", settings)
    notification = s3.get_bucket_notification_configuration(Bucket=settings.uploads_bucket)
    notification.pop("ResponseMetadata", None)
    world = World(settings)
    client = world.uploader(0)
    path = song(tmp_path, 0, 6)
    s3.put_bucket_notification_configuration(
        Bucket=settings.uploads_bucket, NotificationConfiguration={}
    )
    try:
        created = client.create_upload(path)
        client.send_file(created["upload"], path)
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=settings.uploads_bucket, NotificationConfiguration=notification
        )
    world.tracks[created["track_id"]] = f"up-{world.run}-000"
    assert client.track(created["track_id"])["status"] == "awaiting_upload"
    assert created["track_id"] in reconcile(settings)
    [record] = world.finish()
    assert record["status"] == "published"


def test_reprocessing_replaces_outputs_and_sends_nothing_twice(settings: Settings, tmp_path: Path):
    world = World(settings, followers=2)
    track_id = world.upload(0, song(tmp_path, 0, 6))
    [first] = world.finish()
    assert reprocess(track_id, settings) is not None
    [second] = world.finish()
    assert second["status"] == "published"
    assert second["outputs"] == first["outputs"]  # the same keys, written again
    assert second["reprocessed_at"]


# 8 --------------------------------------------------------------------------------------------
def test_a_burst_of_short_uploads(settings: Settings, tmp_path: Path):
    count = scale(8, 200)
    world = World(settings)
    paths = [song(tmp_path, n, 3.0) for n in range(count)]
    started = time.time()
    for n, path in enumerate(paths):
        world.upload(n, path)
    records = world.finish(timeout_s=3600)
    elapsed = time.time() - started
    assert all(r["status"] == "published" for r in records)
    latencies = sorted((_ts(r["finished_at"]) - _ts(r["created_at"])) for r in records)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(
        f"\nburst of {count} uploads: {count / elapsed * 60:.1f} tracks a minute; latency p50 "
        f"{statistics.median(latencies):.1f} s, p95 {p95:.1f} s"
    )


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
