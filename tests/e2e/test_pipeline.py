"""The whole path with real parts: presigned POST to S3, the S3 event in SQS, the kombu consumer,
Celery workers on SQS, DynamoDB state and SES, all on the emulator."""

from __future__ import annotations

import io
import json
import os
import threading
import unicodedata
from pathlib import Path

import pytest
from mutagen.mp3 import MP3
from PIL import Image
from trackflow_devstack.stack import Stack

from tests.support.stack import (
    client_for,
    emails_to,
    object_bytes,
    peaks,
    upload,
    upload_and_wait,
    wait_for,
)
from trackflow.adapters import aws
from trackflow.domain.keys import rendition_artifact
from trackflow.domain.track import STEP_BY_NAME, STEP_NAMES
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings, WorkerGroup
from trackflow.tasks.cores import CoreLeases

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]


@pytest.fixture(scope="module")
def tagged_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "Late Night Tape.mp3"
    return write_track(SampleTrack("Late Night Tape", "Beyoncé Tester", seconds=12, seed=21), path)


def test_a_tagged_mp3_with_cover_art_is_published(settings: Settings, tagged_mp3: Path):
    track = upload_and_wait(client_for(settings, "e2e-alice"), tagged_mp3)
    assert track["status"] == "published", track.get("error")
    assert track["progress"] == 100
    assert {name: s["status"] for name, s in track["steps"].items()} == dict.fromkeys(
        STEP_NAMES, "succeeded"
    )
    assert all(s["attempts"] == 1 for s in track["steps"].values())
    assert all(s["cpu_s"] >= 0 for s in track["steps"].values())  # what each step cost
    assert track["metadata"]["tags"]["title"] == "Late Night Tape"
    assert track["metadata"]["tags"]["artist"] == "Beyoncé Tester"
    # every artifact is where the record says, and is what it claims to be
    outputs = track["outputs"]
    assert len([k for k in outputs if k.startswith("artwork/")]) == 32
    for name, uri in outputs.items():
        data = object_bytes(settings, uri)
        assert data, name
        if name.endswith(".jpg") or name.endswith(".webp"):
            with Image.open(io.BytesIO(data)) as image:
                side = int(name.split("/")[1].split(".")[0].split("@")[0])
                assert image.size == ((2 * side,) * 2 if "@2x" in name else (side,) * 2)
    for bitrate in (128, 192, 320):
        mp3 = MP3(io.BytesIO(object_bytes(settings, outputs[rendition_artifact(bitrate)])))
        assert mp3.info.bitrate == pytest.approx(bitrate * 1000, abs=100)
        assert str(mp3.tags["TIT2"]) == "Late Night Tape"
        rendition = track["renditions"][str(bitrate)]
        assert rendition["duration_s"] == pytest.approx(12.0, abs=0.03)
        assert rendition["loudness"]["integrated_lufs"] == pytest.approx(-14, abs=0.5)
    doc = peaks(settings, track)
    assert doc["version"] == 2 and doc["length"] == pytest.approx(12.0 * 44100 / 512, abs=1)
    assert track["copyright"]["result"] == "none"
    # the uploader hears about it once
    [email] = emails_to(settings, "e2e-alice@users.trackflow.local")
    assert "is published" in email["Subject"]
    assert track["notifications"]["published"]["state"] == "sent"


def test_a_file_that_is_not_audio_fails_clearly_and_the_worker_carries_on(
    settings: Settings, tmp_path: Path
):
    fake = tmp_path / "definitely a song.mp3"
    fake.write_bytes(b"<html><body>this is a web page</body></html>\n" * 200)
    client = client_for(settings, "e2e-bob")
    track = client.wait(upload(client, fake, "audio/mpeg"), timeout_s=120)
    assert track["status"] == "failed"
    assert track["error"]["code"] == "unsupported_format"
    assert "not an audio file" in track["error"]["message"]
    assert not [name for name in track["outputs"] if name.startswith("audio/")]
    for name in ("transcode_128", "transcode_192", "transcode_320", "index_track", "publish_feed"):
        assert track["steps"][name]["status"] == "skipped"
    assert max(s["attempts"] for s in track["steps"].values()) == 1  # never retried
    # the failure email follows the failure itself
    [email] = wait_for(lambda: emails_to(settings, "e2e-bob@users.trackflow.local"))
    assert "could not process" in email["Subject"]
    # the original is kept for inspection
    source = aws.client("s3", settings).head_object(
        Bucket=track["source"]["bucket"], Key=track["source"]["key"]
    )
    assert source["ContentLength"] == fake.stat().st_size
    # and the workers are healthy: the next upload goes through
    song = write_track(SampleTrack("Next One", "Bob", seconds=6, seed=77), tmp_path / "next.mp3")
    assert upload_and_wait(client, song)["status"] == "published"


def test_a_duplicate_s3_event_starts_nothing(settings: Settings, tmp_path: Path):
    path = write_track(SampleTrack("Echo", "Twice", seconds=6, seed=5), tmp_path / "echo.mp3")
    client = client_for(settings, "e2e-carol")
    track = upload_and_wait(client, path)
    assert track["status"] == "published"
    sqs = aws.client("sqs", settings)
    queue = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    source = track["source"]
    duplicate = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "bucket": {"name": source["bucket"]},
                    "object": {"key": source["key"].replace(" ", "+"), "size": source["size"]},
                },
            }
        ]
    }
    for _ in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(duplicate))
    wait_for(
        lambda: (
            int(
                sqs.get_queue_attributes(
                    QueueUrl=queue,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]["ApproximateNumberOfMessages"]
            )
            == 0
        ),
        timeout_s=30,
    )
    again = client.track(track["track_id"])
    assert all(s["attempts"] == 1 for s in again["steps"].values())
    assert len(emails_to(settings, "e2e-carol@users.trackflow.local")) == 1


def test_keys_with_spaces_plus_percent_emoji_and_either_unicode_form_reach_their_track(
    settings: Settings, tmp_path: Path
):
    """S3 events carry keys URL-encoded ('+' for a space); file names come in NFC or NFD."""
    name = "Café + Crème 100% 🎵 mix.mp3"
    client = client_for(settings, "e2e-unicode")
    sent = {}
    for form in ("NFC", "NFD"):
        folder = tmp_path / form
        folder.mkdir()
        path = folder / unicodedata.normalize(form, name)
        write_track(SampleTrack(f"Title {form}", "Keys", seconds=4, seed=len(sent)), path)
        sent[upload(client, path)] = form
    for track_id, form in sent.items():
        track = client.wait(track_id, timeout_s=240)
        assert track["status"] == "published", track.get("error")
        assert track["metadata"]["tags"]["title"] == f"Title {form}"
        assert track["source"]["key"].endswith(f"/{track_id}/{unicodedata.normalize('NFC', name)}")


def test_steps_of_an_idle_stack_share_cores_rather_than_wait(
    settings: Settings, stack: Stack, tmp_path: Path
):
    """Every core of the host is leased (by this test): the worker's steps, which start as soon
    as they are ready, share a core rather than wait for one."""
    leases = CoreLeases(Path(settings.data_dir) / "cores", os.cpu_count() or 2)
    held = [leases.take() for _ in leases.paths]
    assert None not in held, "a core is leased while nothing runs"
    given_back = threading.Lock()

    def give_back() -> None:
        if given_back.acquire(blocking=False):
            for fd in held:
                os.close(fd)

    # a step slow to start (a loaded machine) waits for a core: it gets one, and the test fails
    safety = threading.Timer(60, give_back)
    safety.start()
    try:
        path = write_track(SampleTrack("Crowd", "Shares", seconds=6, seed=9), tmp_path / "c.mp3")
        track = upload_and_wait(client_for(settings, "e2e-dave"), path)
    finally:
        safety.cancel()
        give_back()
    assert track["status"] == "published", track.get("error")
    log = (stack.log_dir / "worker-cpu-standard.log").read_text().splitlines()
    turns = [json.loads(line) for line in log if track["track_id"] in line and "core" in line]
    shared = {t["step"] for t in turns if t["event"] == "step_sharing_a_core" and not t["queued"]}
    cpu_steps = {name for name in STEP_NAMES if STEP_BY_NAME[name].group is WorkerGroup.CPU}
    assert shared == cpu_steps, turns
