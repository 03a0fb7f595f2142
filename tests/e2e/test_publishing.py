"""Publication on the real stack: search, followers' feeds, emails at the account's rate,
exactly once under duplicate events, and a priority lane that overtakes the backlog."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.stack import client_for, emails_to, upload, upload_and_wait, wait_for
from trackflow.adapters import aws
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.tracks import TrackStore
from trackflow.domain.track import STEP_NAMES, initial_steps
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Lane, Settings, WorkerGroup
from trackflow.tasks.steps import notify_uploader

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]


def _events_drained(settings: Settings) -> bool:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


def test_duplicate_events_give_one_workflow_one_email_one_entry_per_follower(
    settings: Settings, tmp_path: Path
):
    star = f"star-{uuid.uuid4().hex[:6]}"
    fans = [f"fan-{n:02d}-{uuid.uuid4().hex[:4]}" for n in range(50)]
    star_client = client_for(settings, star)
    star_client.request("GET", "/v1/me")  # the account exists
    for fan in fans:
        client_for(settings, fan).request("POST", f"/v1/users/{star}/followers")
    path = write_track(
        SampleTrack("Crowd Pleaser", star, seconds=6, seed=4711), tmp_path / "crowd.mp3"
    )
    track = upload_and_wait(star_client, path)
    assert track["status"] == "published"
    # S3 delivers at least once: the same record arrives five more times, some at once
    sqs = aws.client("sqs", settings)
    queue = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    source = track["source"]
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Post",
        "s3": {
            "bucket": {"name": source["bucket"]},
            "object": {"key": source["key"].replace(" ", "+"), "size": source["size"]},
        },
    }
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": str(n), "MessageBody": json.dumps({"Records": [record]})} for n in range(5)
        ],
    )
    wait_for(lambda: _events_drained(settings), timeout_s=60)
    again = star_client.track(track["track_id"])
    assert all(s["attempts"] == 1 for s in again["steps"].values())
    assert len(emails_to(settings, f"{star}@users.trackflow.local")) == 1
    for fan in fans:
        entries = client_for(settings, fan).request("GET", "/v1/feed")["entries"]
        assert [e["track_id"] for e in entries] == [track["track_id"]], fan


def test_search_finds_published_tracks_by_prefix_without_accents(
    settings: Settings, tmp_path: Path
):
    user = f"singer-{uuid.uuid4().hex[:6]}"
    client = client_for(settings, user)
    path = write_track(
        SampleTrack("Déjà Vu Überall", "Beyoncé Ñandú", album="Ça Va", seconds=6, seed=8080),
        tmp_path / "deja vu.mp3",
    )
    track = upload_and_wait(client, path)
    assert track["status"] == "published"
    for query in ("beyonce deja", "BEYON", "uber", "nandu", "ça va"):
        hits = client.request("GET", "/v1/search", params={"q": query})["hits"]
        assert track["track_id"] in [h["track_id"] for h in hits], query
    assert client.request("GET", "/v1/search", params={"q": "zzzqqq"})["total"] == 0
    # deleting the track takes it out of search (and the rest goes in the background)
    client.request("DELETE", f"/v1/tracks/{track['track_id']}")
    hits = client.request("GET", "/v1/search", params={"q": "beyonce deja"})["hits"]
    assert track["track_id"] not in [h["track_id"] for h in hits]

    def gone() -> bool:
        from trackflow.cli.client import ApiError

        try:
            client.track(track["track_id"])
        except ApiError as error:
            return error.status == 404
        return False

    wait_for(gone, timeout_s=60)
    # the uploads bucket is versioned: no version of the upload is left behind a delete marker
    versions = aws.client("s3", settings).list_object_versions(
        Bucket=settings.uploads_bucket, Prefix=track["source"]["key"]
    )
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def test_a_user_who_opted_out_gets_no_email(settings: Settings, tmp_path: Path):
    user = f"quiet-{uuid.uuid4().hex[:6]}"
    client = client_for(settings, user)
    client.request("PATCH", "/v1/me", json={"email_opt_out": True})
    path = write_track(SampleTrack("Shh", user, seconds=5, seed=515), tmp_path / "shh.mp3")
    track = upload_and_wait(client, path)
    assert track["status"] == "published"
    assert track["notifications"]["published"]["state"] == "suppressed"
    assert emails_to(settings, f"{user}@users.trackflow.local") == []


def _ready_to_notify(store: TrackStore, owner: str) -> str:
    """A track whose every step but the email is done, as if its workflow had got that far."""
    track_id = uuid.uuid4().hex
    steps = initial_steps()
    for name in STEP_NAMES:
        if name != "notify_uploader":
            steps[name] = {"status": "succeeded", "attempts": 1}
    now = now_iso()
    store.create(
        {
            "track_id": track_id,
            "owner": owner,
            "status": "processing",
            "steps": steps,
            "lane": "standard",
            "filename": "burst.mp3",
            "outputs": {},
            "notifications": {},
            "renditions": {},
            "metadata": {"tags": {"title": "Burst"}},
            "upload": {"key": "x"},
            "created_at": now,
            "updated_at": now,
        }
    )
    return track_id


def test_a_burst_of_publications_is_emailed_at_the_accounts_rate(settings: Settings):
    """500 publications at once: every email is sent, once, and no second ever holds more than
    the configured send rate."""
    store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    owner = f"burst-{uuid.uuid4().hex[:6]}"
    track_ids = [_ready_to_notify(store, owner) for _ in range(500)]
    queue = settings.queue(WorkerGroup.IO, Lane.STANDARD)
    for track_id in track_ids:
        notify_uploader.apply_async((track_id,), queue=queue)

    def all_sent() -> list[dict] | None:
        tracks = [store.get(t) for t in track_ids]
        done = [t for t in tracks if t["status"] == "published"]
        return tracks if len(done) == len(tracks) else None

    tracks = wait_for(all_sent, timeout_s=400, interval_s=2)
    sent = sorted(
        datetime.fromisoformat(t["notifications"]["published"]["sent_at"][:-1]).timestamp()
        for t in tracks
    )
    assert len(sent) == 500
    assert len(emails_to(settings, f"{owner}@users.trackflow.local")) == 500
    rate = settings.email_rate_per_s
    window = [sum(1 for s in sent if start <= s < start + 1.0) for start in sent]
    assert max(window) <= rate + 1, (max(window), rate)  # +1: a slot on each edge of a second
    assert all(t["steps"]["notify_uploader"]["status"] == "succeeded" for t in tracks)


def test_a_priority_upload_overtakes_the_backlog(settings: Settings, tmp_path: Path):
    admin = client_for(settings, "admin")
    vip = f"vip-{uuid.uuid4().hex[:6]}"
    client_for(settings, vip).request("GET", "/v1/me")
    admin.request("PATCH", f"/v1/users/{vip}", json={"priority": True})
    crowd = client_for(settings, f"crowd-{uuid.uuid4().hex[:6]}")
    # a real backlog: every file made first, then all uploaded back to back (made one by one
    # between uploads, they arrived no faster than two CPU slots processed them)
    paths = [
        write_track(
            SampleTrack(f"Backlog {n}", "Crowd", seconds=40, seed=6000 + n),
            tmp_path / f"backlog{n}.mp3",
        )
        for n in range(8)
    ]
    path = write_track(SampleTrack("Front Row", "VIP", seconds=10, seed=7777), tmp_path / "vip.mp3")
    backlog = [upload(crowd, p) for p in paths]
    vip_client = client_for(settings, vip)
    priority = vip_client.wait(upload(vip_client, path), timeout_s=300)
    assert priority["status"] == "published" and priority["lane"] == "priority"
    still_busy = [t for t in backlog if crowd.track(t)["status"] not in ("published",)]
    assert still_busy, "the backlog drained before the priority upload was published"
    for track_id in backlog:
        assert crowd.wait(track_id, timeout_s=600)["status"] == "published"


def test_bulk_workers_yield_the_cpu_to_the_pipeline(stack):
    """The catalogue's bulk work runs at a lower CPU priority, its pool processes too, so on
    shared cores an upload's steps come first."""
    import psutil

    from trackflow.cli.commands.worker import BULK_NICENESS

    for role in stack.roles:
        if not role.name.startswith("worker-"):
            continue
        main = psutil.Process(role.process.pid)
        niceness = {p.nice() for p in [main, *main.children(recursive=True)]}
        assert niceness == ({BULK_NICENESS} if role.name.endswith("-bulk") else {0}), role.name


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="a Linux scheduling policy")
def test_cpu_workers_are_scheduled_as_batch_work(stack):
    """The standard and bulk lanes' CPU workers, their pool processes too, are batch work to the
    scheduler (media processes stop preempting each other); the priority lane's and the I/O
    workers keep the default policy."""
    import psutil

    for role in stack.roles:
        if not role.name.startswith("worker-"):
            continue
        main = psutil.Process(role.process.pid)
        policies = set()
        for process in [main, *main.children(recursive=True)]:
            with contextlib.suppress(ProcessLookupError):  # an ffmpeg that just ended
                policies.add(os.sched_getscheduler(process.pid))
        batch = role.name in ("worker-cpu-standard", "worker-cpu-bulk")
        assert policies == {os.SCHED_BATCH if batch else os.SCHED_OTHER}, role.name
