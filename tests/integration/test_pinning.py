"""Admission pins the uploaded object's version, and every read of the upload is of that version,
on the emulator: what moto 5.1 sends and keeps, admission, the record's note of later objects,
reconciliation, the sweeper's view, and two worker hosts' caches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from trackflow.adapters import aws
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.tracks import MAX_IGNORED_VERSIONS, TrackStore
from trackflow.consumer.admission import Outcome, admit
from trackflow.consumer.events import ObjectCreated, parse_message
from trackflow.consumer.pinning import pin_event
from trackflow.domain.keys import catalogue_key, upload_key
from trackflow.domain.track import initial_steps
from trackflow.errors import InputRejected
from trackflow.settings import Settings
from trackflow.tasks import recovery, workflow
from trackflow.tasks.runtime import StepContext, original_upload

pytestmark = pytest.mark.usefixtures("emulator")

A = b"ID3-A" + b"a" * 4000
B = b"ID3-B" + b"b" * 6000


@pytest.fixture
def store(settings: Settings) -> TrackStore:
    return TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stages launched, recorded instead of sent: no worker runs in these tests."""
    sent: list[str] = []

    def launch(store: TrackStore, track: dict[str, Any], stage: Any, *, force: bool = False):
        if force or store.claim_stage(track["track_id"], stage.name):
            sent.append(track["track_id"])
            return True
        return False

    monkeypatch.setattr(workflow, "launch_stage", launch)
    return sent


def _awaiting(settings: Settings, store: TrackStore, owner: str = "pin-user") -> dict[str, Any]:
    track_id = uuid.uuid4().hex
    key = upload_key(settings.uploads_prefix, owner, track_id, "song.mp3")
    now = now_iso()
    track = {
        "track_id": track_id,
        "owner": owner,
        "status": "awaiting_upload",
        "lane": "standard",
        "upload": {"bucket": settings.uploads_bucket, "key": key},
        "steps": initial_steps(),
        "outputs": {},
        "stages": {},
        "created_at": now,
        "updated_at": now,
    }
    store.create(track)
    return track


def _put(settings: Settings, key: str, body: bytes) -> dict[str, Any]:
    return aws.client("s3", settings).put_object(
        Bucket=settings.uploads_bucket, Key=key, Body=body, ContentType="audio/mpeg"
    )


def _event(settings: Settings, key: str, etag: str, size: int) -> ObjectCreated:
    """The event moto sends for an upload: no version id, no sequencer, a bare ETag."""
    return ObjectCreated(
        settings.uploads_bucket, key, size, etag.strip('"'), "ObjectCreated:Post", now_iso()
    )


def test_bootstrap_versions_the_uploads_bucket_as_terraform_does(settings: Settings):
    """Versioning on, and replaced versions expire a week later (infra/modules/storage)."""
    s3 = aws.client("s3", settings)
    assert s3.get_bucket_versioning(Bucket=settings.uploads_bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=settings.uploads_bucket)["Rules"]
    [originals] = [r for r in rules if r["ID"] == "expire-originals"]
    assert originals["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7


@pytest.fixture
def watched_bucket(settings: Settings) -> Iterator[tuple[str, str]]:
    """A versioned bucket of its own whose ObjectCreated events go to a queue of its own (the
    stack's consumer, if one runs in this session, must not take them)."""
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    name = f"pin-facts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    yield name, queue
    sqs.delete_queue(QueueUrl=queue)


def test_moto_events_name_no_version_and_the_pin_is_found_by_etag(
    settings: Settings, watched_bucket: tuple[str, str]
):
    """One presigned POST used twice, A then B: moto's two events carry a bare ETag and no
    version id; each still pins its own version, A's found among the versions by its ETag once
    B is current."""
    bucket, queue = watched_bucket
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    key = "uploads/someone/t/a b.mp3"
    post = s3.generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": "audio/mpeg"},
        Conditions=[{"Content-Type": "audio/mpeg"}],
        ExpiresIn=600,
    )
    for body in (A, B):
        answer = requests.post(
            post["url"], data=post["fields"], files={"file": ("a.mp3", body)}, timeout=30
        )
        assert answer.status_code == 204, answer.text
    events: list[ObjectCreated] = []
    deadline = time.monotonic() + 10
    while len(events) < 2 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            events += parse_message(message["Body"])
    assert [e.key for e in events] == [key, key]
    assert all(e.version_id is None and e.sequencer is None for e in events)  # moto 5.1
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    by_etag = {v["ETag"].strip('"'): v["VersionId"] for v in versions}
    assert len(by_etag) == 2
    for event, content in zip(events, (A, B), strict=True):
        pin = pin_event(s3, event)
        assert pin.version_id == by_etag[pin.etag] and pin.etag == event.etag
        read = s3.get_object(Bucket=bucket, Key=key, VersionId=pin.version_id)["Body"].read()
        assert read == content


def test_a_second_object_after_admission_changes_nothing_and_is_noted(
    settings: Settings, store: TrackStore, launches: list[str]
):
    """A is admitted with its version; B under the same key is ignored, noted once however
    often its event comes, and starts nothing; A's own duplicate is a plain duplicate."""
    track = _awaiting(settings, store)
    key = track["upload"]["key"]
    put_a = _put(settings, key, A)
    put_b = _put(settings, key, B)  # before A's event is handled: the worst case
    event_a = _event(settings, key, put_a["ETag"], len(A))
    event_b = _event(settings, key, put_b["ETag"], len(B))

    assert admit(event_a, settings, store).outcome is Outcome.LAUNCHED
    admitted = store.get(track["track_id"])
    assert admitted["status"] == "queued"
    assert admitted["source"]["version_id"] == put_a["VersionId"]
    assert admitted["source"]["etag"] == put_a["ETag"].strip('"')
    for _ in range(3):
        assert admit(event_b, settings, store).outcome is Outcome.IGNORED
    assert admit(event_a, settings, store).outcome is Outcome.DUPLICATE
    after = store.get(track["track_id"])
    assert launches == [track["track_id"]]
    assert after["status"] == "queued" and after["updated_at"] == admitted["updated_at"]
    assert {k: after["source"][k] for k in ("version_id", "etag", "size")} == {
        "version_id": put_a["VersionId"],
        "etag": put_a["ETag"].strip('"'),
        "size": len(A),
    }
    [(name, note)] = after["source"]["ignored_versions"].items()
    assert name == note["version_id"] == put_b["VersionId"]
    assert (note["etag"], note["size"]) == (put_b["ETag"].strip('"'), len(B))


def test_two_worker_hosts_read_the_admitted_version(
    settings: Settings, store: TrackStore, launches: list[str], tmp_path: Path
):
    """Two hosts (two data dirs, two caches) read A through the step runtime after B replaced
    it; neither caches B's bytes anywhere."""
    track = _awaiting(settings, store)
    key = track["upload"]["key"]
    put_a = _put(settings, key, A)
    _put(settings, key, B)
    admit(_event(settings, key, put_a["ETag"], len(A)), settings, store)
    admitted = store.get(track["track_id"])
    for host in ("host-1", "host-2"):
        on_host = settings.model_copy(update={"data_dir": tmp_path / host})
        ctx = StepContext(admitted, "check_copyright", on_host, tmp_path, "task")
        assert ctx.original().read_bytes() == A
        cached = [p.read_bytes() for p in (tmp_path / host / "cache").iterdir() if p.is_file()]
        assert A in cached and B not in cached


def test_a_pinned_version_that_is_gone_fails_the_read_not_the_check(
    settings: Settings, store: TrackStore, launches: list[str], tmp_path: Path
):
    """If the admitted version is deleted, the step is refused an upload (a clear input error);
    it never falls back to whatever the key holds now."""
    track = _awaiting(settings, store)
    key = track["upload"]["key"]
    put_a = _put(settings, key, A)
    _put(settings, key, B)
    admit(_event(settings, key, put_a["ETag"], len(A)), settings, store)
    aws.client("s3", settings).delete_object(
        Bucket=settings.uploads_bucket, Key=key, VersionId=put_a["VersionId"]
    )
    on_host = settings.model_copy(update={"data_dir": tmp_path / "host"})
    ctx = StepContext(store.get(track["track_id"]), "extract_metadata", on_host, tmp_path, "t")
    with pytest.raises(InputRejected) as refused:
        ctx.original()
    assert refused.value.code == "upload_unavailable"
    assert "/" not in refused.value.message  # no key or path in what the uploader reads


def test_the_note_of_ignored_objects_stays_bounded(
    settings: Settings, store: TrackStore, launches: list[str]
):
    """A presigned POST used many times notes the first few objects and says there were more."""
    track = _awaiting(settings, store)
    key = track["upload"]["key"]
    first = _put(settings, key, A)
    admit(_event(settings, key, first["ETag"], len(A)), settings, store)
    for n in range(MAX_IGNORED_VERSIONS + 3):
        again = _put(settings, key, B + str(n).encode())
        assert (
            admit(_event(settings, key, again["ETag"], len(B)), settings, store).outcome
            is Outcome.IGNORED
        )
    source = store.get(track["track_id"])["source"]
    assert len(source["ignored_versions"]) == MAX_IGNORED_VERSIONS
    assert source["ignored_versions_truncated"] is True
    assert source["version_id"] == first["VersionId"]
    assert launches == [track["track_id"]]


def test_reconcile_and_the_sweeper_pin_the_version_they_saw(
    settings: Settings, store: TrackStore, launches: list[str]
):
    """An upload whose event never came is admitted by reconciliation with the current
    version's id; the sweeper's rebuilt event names the version its HEAD saw."""
    track = _awaiting(settings, store)
    key = track["upload"]["key"]
    _put(settings, key, A)
    current = _put(settings, key, B)
    swept = recovery._upload_event(settings, key)
    assert swept is not None and swept.version_id == current["VersionId"]
    assert track["track_id"] in recovery.reconcile(settings)
    source = store.get(track["track_id"])["source"]
    assert (source["version_id"], source["etag"]) == (
        current["VersionId"],
        current["ETag"].strip('"'),
    )
    # the older object, announced late, is only noted
    older = s3_versions(settings, key)[-1]
    late = ObjectCreated(
        settings.uploads_bucket, key, len(A), older["ETag"], "ObjectCreated:Post", now_iso()
    )
    assert admit(late, settings, store).outcome is Outcome.IGNORED
    assert list(store.get(track["track_id"])["source"]["ignored_versions"]) == [older["VersionId"]]


def s3_versions(settings: Settings, key: str) -> list[dict[str, Any]]:
    """The versions of ``key``, newest first."""
    listing = aws.client("s3", settings).list_object_versions(
        Bucket=settings.uploads_bucket, Prefix=key
    )
    return [v for v in listing["Versions"] if v["Key"] == key]


def test_a_reference_work_is_pinned_to_the_version_its_event_announced(
    settings: Settings, store: TrackStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """A catalogue work's upload is pinned like a track's: the fingerprinting reads A even once
    B replaced it, and B's event starts nothing."""
    from trackflow.consumer import admission
    from trackflow.tasks.catalogue import catalogue_store

    started: list[str] = []
    monkeypatch.setattr(admission.fingerprint_work, "delay", started.append)
    catalogue = catalogue_store(settings)
    work = catalogue.create(title="Reference", owner="Label", status="awaiting_upload")
    key = catalogue_key(settings.uploads_prefix, work["work_id"], "reference.wav")
    catalogue.update(work["work_id"], upload={"key": key})
    put_a = _put(settings, key, A)
    put_b = _put(settings, key, B)

    assert admit(_event(settings, key, put_a["ETag"], len(A)), settings, store).outcome is (
        Outcome.LAUNCHED
    )
    assert admit(_event(settings, key, put_b["ETag"], len(B)), settings, store).outcome is (
        Outcome.IGNORED
    )
    assert started == [work["work_id"]]
    source = catalogue.get(work["work_id"])["source"]
    assert source["version_id"] == put_a["VersionId"]
    on_host = settings.model_copy(update={"data_dir": tmp_path / "host"})
    assert original_upload(source, on_host).read_bytes() == A
