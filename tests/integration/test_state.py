"""State on the emulator: the resources, track transitions, catalogue, follows, feeds and the
shared send rate."""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.support.stack import emails_to
from trackflow.adapters import aws
from trackflow.adapters.state import ratelimit
from trackflow.adapters.state.catalogue import Catalogue, WorkStatus
from trackflow.adapters.state.ratelimit import RateLimiter
from trackflow.adapters.state.social import SocialStore
from trackflow.adapters.state.tracks import StepStart, TrackStore
from trackflow.domain.track import ACTIVE, Status, StepStatus, initial_steps
from trackflow.operations.bootstrap import bootstrap
from trackflow.settings import DLQ_SUFFIX, Settings
from trackflow.tasks.cache import ObjectCache

pytestmark = pytest.mark.usefixtures("emulator")


def test_bootstrap_is_idempotent_and_makes_what_settings_name(settings: Settings):
    bootstrap(settings)  # a second run changes nothing and fails on nothing
    sqs = aws.client("sqs", settings)
    for queue in settings.all_queues:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(queue + DLQ_SUFFIX)
        assert int(redrive["maxReceiveCount"]) == settings.max_receive_count
        assert int(attributes["VisibilityTimeout"]) == settings.visibility_timeouts[queue]
    s3 = aws.client("s3", settings)
    for bucket in (settings.uploads_bucket, settings.media_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    notification = s3.get_bucket_notification_configuration(Bucket=settings.uploads_bucket)
    [config] = notification["QueueConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]


def _track(store: TrackStore, owner: str = "alice") -> str:
    track_id = uuid.uuid4().hex
    store.create(
        {
            "track_id": track_id,
            "owner": owner,
            "status": "queued",
            "steps": initial_steps(),
            "outputs": {},
            "notifications": {},
            "renditions": {},
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "x",
        }
    )
    return track_id


@pytest.fixture
def tracks(settings: Settings) -> TrackStore:
    return TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))


def test_a_step_runs_once_and_a_redelivery_finds_it_done(tracks: TrackStore):
    track_id = _track(tracks)
    begun = tracks.begin_step(track_id, "extract_metadata")
    assert begun.outcome is StepStart.RUN and begun.track["status"] == Status.PROCESSING
    done = tracks.finish_step(
        track_id,
        "extract_metadata",
        started_at=begun.track["steps"]["extract_metadata"]["started_at"],
        fields={"metadata": {"tags": {"title": "x"}}},
        outputs={"a/b.json": "s3://m/a/b.json"},
    )
    assert done["steps"]["extract_metadata"]["status"] == StepStatus.SUCCEEDED
    assert done["outputs"]["a/b.json"] == "s3://m/a/b.json"
    assert tracks.begin_step(track_id, "extract_metadata").outcome is StepStart.DONE


def test_failure_ends_the_track_once_and_skips_what_never_ran(tracks: TrackStore):
    track_id = _track(tracks)
    tracks.begin_step(track_id, "analyse_waveform")
    failed = tracks.fail(
        track_id, {"code": "corrupt_audio", "message": "m"}, step="analyse_waveform"
    )
    assert failed["status"] == Status.FAILED and failed["error"]["step"] == "analyse_waveform"
    assert failed["steps"]["transcode_128"]["status"] == StepStatus.SKIPPED
    assert failed["steps"]["analyse_waveform"]["status"] == StepStatus.FAILED


def test_a_fault_of_the_input_is_credited_to_the_input_gate(tracks: TrackStore):
    """The step that met bad input fails, and the track's error names the input gate."""
    track_id = _track(tracks)
    tracks.begin_step(track_id, "check_copyright")
    failed = tracks.fail(
        track_id,
        {"code": "corrupt_audio", "message": "m"},
        step="check_copyright",
        credited_to="input_gate",
    )
    assert failed is not None and failed["error"]["step"] == "input_gate"
    assert failed["steps"]["check_copyright"]["status"] == StepStatus.FAILED
    assert tracks.fail(track_id, {"code": "other", "message": "m"}) is None  # already ended
    assert tracks.begin_step(track_id, "transcode_128").outcome is StepStart.SKIP
    notify = tracks.begin_step(
        track_id, "notify_uploader", runs_when=[Status.FAILED, Status.REJECTED]
    )
    assert notify.outcome is StepStart.RUN


def test_ending_a_track_and_skipping_its_pending_steps_is_one_write(
    tracks: TrackStore, monkeypatch: pytest.MonkeyPatch
):
    track_id = _track(tracks)
    stale = tracks.get(track_id)  # read before transcode_128 starts
    tracks.begin_step(track_id, "transcode_128")
    reads = iter([stale])
    fresh_get = tracks.get
    monkeypatch.setattr(tracks, "get", lambda tid: next(reads, None) or fresh_get(tid))

    rejected = tracks.transition(track_id, Status.REJECTED, allowed_from=ACTIVE)

    # the write built on the stale read failed as a whole; the retry left the started step alone
    assert rejected["status"] == Status.REJECTED
    assert rejected["steps"]["transcode_128"]["status"] == StepStatus.RUNNING
    assert rejected["steps"]["transcode_192"]["status"] == StepStatus.SKIPPED
    assert {s["status"] for s in rejected["steps"].values()} == {"running", "skipped"}


def test_transitions_only_move_forward(tracks: TrackStore):
    track_id = _track(tracks)
    assert tracks.transition(track_id, Status.REJECTED, allowed_from=[Status.QUEUED])
    assert tracks.transition(track_id, Status.PUBLISHED, allowed_from=[Status.PROCESSING]) is None


def test_one_email_claim_per_outcome(tracks: TrackStore):
    track_id = _track(tracks)
    now = time.time()
    claim = tracks.claim_notification(
        track_id, "published", owner="task-1", slot_at=now, lease_s=60
    )
    assert claim["owner"] == "task-1"
    other = tracks.claim_notification(
        track_id, "published", owner="task-2", slot_at=now, lease_s=60
    )
    assert other["owner"] == "task-1"  # held by the first sender
    renewed = tracks.claim_notification(
        track_id, "published", owner="task-1", slot_at=now + 1, lease_s=60
    )
    assert renewed["slot_at"] == pytest.approx(now + 1)  # its holder may come back to it
    tracks.confirm_notification(track_id, "published", {"state": "sent"})
    late = tracks.claim_notification(track_id, "published", owner="task-3", slot_at=now, lease_s=60)
    assert late["state"] == "sent"
    orphan = _track(tracks)
    tracks.claim_notification(orphan, "failed", owner="dead", slot_at=now - 100, lease_s=1)
    taken = tracks.claim_notification(orphan, "failed", owner="alive", slot_at=now, lease_s=60)
    assert taken["owner"] == "alive"  # the lease of a sender that died ran out


def test_catalogue_indexes_in_chunks_finds_and_removes_works(settings: Settings):
    catalogue = Catalogue(
        aws.client("dynamodb", settings),
        settings.table("catalogue"),
        settings.table("fingerprints"),
    )
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 1 << 23, 300, dtype=np.uint32)
    times = np.arange(300, dtype=np.uint32)
    work = catalogue.create(title="Hit", owner="label", status=WorkStatus.INDEXING, chunks=3)
    assert catalogue.index_chunk(work, hashes, times, 0, 3) is False
    catalogue.index_chunk(work, hashes, times, 0, 3)  # redelivered: nothing changes
    assert catalogue.index_chunk(work, hashes, times, 1, 3) is False
    assert catalogue.index_chunk(work, hashes, times, 2, 3) is True
    assert catalogue.get(work["work_id"])["status"] == WorkStatus.ACTIVE
    found = catalogue.lookup(hashes[:50])
    assert len(found) == len(set(hashes[:50].tolist()))
    assert all(work["number"] in works for works, _ in found.values())
    first = catalogue.create(
        title="Mine", owner="bob", status=WorkStatus.INDEXING, track_id="t" * 32
    )
    again = catalogue.create(
        title="Mine", owner="bob", status=WorkStatus.INDEXING, track_id="t" * 32
    )
    assert first["work_id"] == again["work_id"]  # a published track joins once
    # a published track's sample lives under keys of its own: each pass reads its own postings
    track_work = catalogue.update(first["work_id"], sampling=16, chunks=1)
    catalogue.index_chunk(track_work, hashes[:50], times[:50], 0, 1)
    sampled = catalogue.lookup(hashes[:50], sampled=True)
    assert set(sampled) == set(hashes[:50].tolist())
    assert all(works.tolist() == [first["number"]] for works, _ in sampled.values())
    assert all(first["number"] not in works for works, _ in catalogue.lookup(hashes).values())
    listed, _ = catalogue.list(owner="label")
    assert [w["work_id"] for w in listed] == [work["work_id"]]
    assert catalogue.remove(work["work_id"])["status"] == WorkStatus.REMOVED
    assert catalogue.remove(work["work_id"]) is None
    assert work["number"] not in catalogue.works([work["number"]])
    for chunk in range(3):
        catalogue.index_chunk(work, hashes, times, chunk, 3, remove=True)
    assert all(work["number"] not in works for works, _ in catalogue.lookup(hashes[:50]).values())


def test_follows_and_idempotent_feed_entries(settings: Settings):
    social = SocialStore(
        aws.client("dynamodb", settings), settings.table("follows"), settings.table("feeds")
    )
    star = f"star{uuid.uuid4().hex[:6]}"
    fans = [f"fan{n:03d}" for n in range(30)]
    for fan in fans:
        social.follow(star, fan)
    page, after = social.followers(star, limit=20)
    rest, end = social.followers(star, limit=20, after=after)
    assert page + rest == sorted(fans) and end is None
    entry = {"entry": "2026-01-01T00:00:00Z#t1", "track_id": "t1", "owner": star, "title": "x"}
    social.add_entries(fans, entry)
    social.add_entries(fans, entry)  # redelivered: still one entry each
    items, _ = social.feed(fans[0])
    assert [i["track_id"] for i in items] == ["t1"]
    social.unfollow(star, fans[0])
    assert fans[0] not in social.followers(star)[0]
    assert star in social.following(fans[1])


def test_the_send_rate_is_shared_and_never_exceeded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """Two senders sharing a key take slots no closer than the rate allows. The limiter's clock
    stands still here, so that the slots are exact whatever the machine's load."""
    now = time.time()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now))
    key = f"test-{uuid.uuid4().hex}"
    senders = [
        RateLimiter(aws.client("dynamodb", settings), settings.table("idempotency"), key, 20)
        for _ in range(2)
    ]
    slots = []
    for n in range(30):
        wait = senders[n % 2].reserve(max_wait_s=5)
        assert wait is not None
        slots.append(now + wait)
    assert np.diff(sorted(slots)) == pytest.approx(np.full(29, 1 / 20))
    assert senders[0].reserve(max_wait_s=0.0) is None  # the next free slot is in the future


def test_sent_mail_is_listed_while_other_state_changes(settings: Settings):
    """The emulator lists SES's mail on its own, LocalStack's way, even while buckets come and go
    (moto's dump of all state answers 500 then)."""
    s3, ses = aws.client("s3", settings), aws.client("ses", settings)
    address = f"{uuid.uuid4().hex}@users.trackflow.local"
    ses.send_email(
        Source=settings.email_sender,
        Destination={"ToAddresses": [address]},
        Message={"Subject": {"Data": "hello"}, "Body": {"Text": {"Data": "body"}}},
    )
    bucket = f"scratch-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    [mail] = emails_to(settings, address)
    assert mail["Subject"] == "hello" and mail["Source"] == settings.email_sender


def test_put_files_stores_small_and_large_files_whole(settings: Settings, tmp_path):
    """Small files go up side by side (on a client kept open from one call to the next), a
    large one in one streamed PUT, a larger one by multipart upload; every object arrives whole,
    with its headers, and reads back with its checksum checked (boto3 checks the CRC32 of whole
    objects)."""
    settings = settings.model_copy(update={"multipart_upload_bytes": 12 * 1024 * 1024})
    prefix = f"put-files/{uuid.uuid4().hex}"
    sizes = [10, 1000, 50_000, aws.SMALL_OBJECT_BYTES + 1024 * 1024, 13 * 1024 * 1024]
    files = []
    for n, size in enumerate(sizes):
        path = tmp_path / f"f{n}"
        path.write_bytes(bytes([n]) * size)
        files.append(aws.S3Upload(path, f"{prefix}/f{n}", "application/octet-stream"))
    etags = aws.put_files(settings.media_bucket, files[:2], settings)
    etags |= aws.put_files(settings.media_bucket, files[2:], settings)
    s3 = aws.client("s3", settings)
    for upload in files:
        stored = s3.get_object(Bucket=settings.media_bucket, Key=upload.key)
        assert stored["Body"].read() == upload.path.read_bytes()
        assert stored["ContentType"] == "application/octet-stream"
        assert stored["CacheControl"] == upload.cache_control
        assert stored["ETag"] == etags[upload.key]
    # an S3 ETag names the parts of a multipart upload, and only of one
    assert [etags[f.key].strip('"').partition("-")[2] for f in files[3:]] == ["", "2"]


def test_a_request_the_client_does_not_check_is_refused_by_the_service(settings: Settings):
    """The catalogue's client leaves out botocore's parameter check: a malformed request still
    fails, with the service's own error."""
    unchecked = aws.client("dynamodb", settings, validated=False)
    assert unchecked is not aws.client("dynamodb", settings)
    with pytest.raises(ClientError) as refused:
        unchecked.get_item(TableName=settings.table("fingerprints"), Key={})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_a_stored_file_is_read_back_from_the_cache_and_a_changed_object_is_not(
    settings: Settings, tmp_path
):
    cache = ObjectCache(tmp_path / "cache", max_bytes=1 << 20)
    master = tmp_path / "work" / "normalised.flac"
    master.parent.mkdir()
    master.write_bytes(b"master" * 1000)
    upload = aws.S3Upload(master, f"cache/{uuid.uuid4().hex}", "audio/flac")
    etags = aws.put_files(settings.media_bucket, [upload], settings)
    cache.adopt(master, settings.media_bucket, upload.key, etags[upload.key])
    master.unlink()  # the step's folder goes; the cache keeps its link
    s3 = aws.client("s3", settings)
    kept = cache.get(s3, settings.media_bucket, upload.key)
    assert kept.read_bytes() == b"master" * 1000
    s3.put_object(Bucket=settings.media_bucket, Key=upload.key, Body=b"redone")
    assert cache.get(s3, settings.media_bucket, upload.key).read_bytes() == b"redone"


def test_the_emulator_applies_each_dynamodb_request_whole_under_concurrency(settings: Settings):
    """Writes to one item from many threads all count (moto alone loses some), while writes to
    other tables and batches across tables go on beside them."""
    from concurrent.futures import ThreadPoolExecutor

    db = aws.client("dynamodb", settings)
    key = f"counter-{uuid.uuid4().hex}"
    hashes = [int(h) for h in np.random.default_rng(7).integers(1, 2**40, 50)]

    def count(_: int) -> None:
        db.update_item(
            TableName=settings.table("idempotency"),
            Key={"key": {"S": key}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    def post(value: int) -> None:
        db.update_item(
            TableName=settings.table("fingerprints"),
            Key={"hash": {"N": str(value)}},
            UpdateExpression="ADD p :p",
            ExpressionAttributeValues={":p": {"BS": [value.to_bytes(8, "big")]}},
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: count(n) if n % 2 else post(hashes[n // 2 % 50]), range(400)))
    item = db.get_item(TableName=settings.table("idempotency"), Key={"key": {"S": key}})["Item"]
    assert item["n"]["N"] == "200"
    got = db.batch_get_item(
        RequestItems={
            settings.table("fingerprints"): {"Keys": [{"hash": {"N": str(h)}} for h in hashes]},
            settings.table("idempotency"): {"Keys": [{"key": {"S": key}}]},
        }
    )["Responses"]
    assert len(got[settings.table("fingerprints")]) == 50
    assert len(got[settings.table("idempotency")]) == 1


def test_a_record_the_sweep_cannot_handle_does_not_stop_the_sweep(
    tracks: TrackStore, settings: Settings
):
    """A stalled track whose record lacks what the sweep needs is logged and passed over; the
    tracks after it are still swept (here: an expired upload that never came is failed)."""
    from datetime import UTC, datetime, timedelta

    from trackflow.tasks.recovery import sweep

    broken = uuid.uuid4().hex
    tracks.create(
        {
            "track_id": broken,
            "owner": "alice",
            "status": "queued",
            "steps": initial_steps(),
            "updated_at": "2000-01-01T00:00:00.000Z",
        }
    )
    expired = uuid.uuid4().hex
    tracks.create(
        {
            "track_id": expired,
            "owner": "alice",
            "status": "awaiting_upload",
            "steps": initial_steps(),
            "updated_at": "2000-01-01T00:00:00.000Z",
            "upload": {"bucket": settings.uploads_bucket, "key": f"uploads/alice/{expired}/a.mp3"},
        }
    )
    report = sweep(settings, now=datetime.now(UTC) + timedelta(days=1))
    assert expired in report.expired
    assert tracks.get(expired)["status"] == Status.FAILED
