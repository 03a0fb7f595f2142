"""A presigned POST used twice, A then at once B, on the whole stack with two worker hosts: the
track is A's throughout (tags, fingerprint, waveform, renditions), B starts nothing, and the
record says B came."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import pad_mp3
from tests.support.stack import client_for, emails_to, object_bytes, peaks, wait_for
from trackflow.adapters import aws
from trackflow.adapters.state.catalogue import unpack_landmarks
from trackflow.domain.keys import rendition_artifact
from trackflow.media import probe, recipes
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

FINGERPRINT_ARTIFACT = "fingerprint/landmarks.npz"


@pytest.fixture
def second_host(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Another worker host on the same stack: a CPU worker of the priority lane with a data dir
    (and so an object cache) of its own. The stack's own priority CPU worker has one process,
    so a stage's CPU steps are shared between the two hosts."""
    data_dir = tmp_path_factory.mktemp("second-host")
    log = (data_dir / "worker.log").open("ab")
    argv = [sys.executable, "-m", "trackflow.cli", "worker", "--group", "cpu", "--lane"]
    worker = subprocess.Popen(
        [*argv, "priority", "--concurrency", "1"],
        env={
            **os.environ,
            "TRACKFLOW_DATA_DIR": str(data_dir),
            "AWS_SDK_UA_APP_ID": "trackflow-second-host",
        },
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: b" ready." in (data_dir / "worker.log").read_bytes(), timeout_s=60)
        yield data_dir
    finally:
        worker.send_signal(signal.SIGTERM)  # a warm shutdown: nothing it holds is lost
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()


def _cached(data_dir: Path, size: int) -> list[bytes]:
    """The contents of the cache entries of ``size`` bytes under a host's data dir."""
    root = data_dir / "cache"
    return [
        p.read_bytes()
        for p in root.iterdir()
        if p.is_file() and not p.name.endswith((".lock", ".part")) and p.stat().st_size == size
    ]


def _landmarks(path: Path, settings: Settings, scratch: Path) -> np.ndarray:
    info = probe.inspect_audio(path, probe.GateLimits())
    return recipes.fingerprint_audio(path, info, settings, scratch).hashes


def test_an_upload_replaced_under_its_key_is_processed_as_admitted_on_two_hosts(
    settings: Settings, tmp_path: Path, second_host: Path
):
    """Upload A, then at once B with the same presigned fields: title, fingerprint, waveform and
    renditions are A's, B runs no step and sends no email, the record notes B's version, and
    neither host's cache holds B's bytes."""
    a = write_track(SampleTrack("Pinned A", "First", seconds=6, seed=8101), tmp_path / "a.mp3")
    b = write_track(SampleTrack("Swapped B", "Second", seconds=9, seed=8202), tmp_path / "b.mp3")
    pad_mp3(a, b.stat().st_size)  # a presigned POST takes exactly the size declared
    user = f"pin-{uuid.uuid4().hex[:6]}"
    client = client_for(settings, user)
    client.request("GET", "/v1/me")
    client_for(settings, "admin").request("PATCH", f"/v1/users/{user}", json={"priority": True})
    created = client.create_upload(a)
    client.send_file(created["upload"], a)
    client.send_file(created["upload"], b)  # the same fields, before A's steps have started

    track = client.wait(created["track_id"], timeout_s=300)
    assert track["status"] == "published", track.get("error")
    assert track["lane"] == "priority"
    assert track["metadata"]["tags"]["title"] == "Pinned A"
    for bitrate in (128, 192, 320):
        assert track["renditions"][str(bitrate)]["duration_s"] == pytest.approx(6.0, abs=0.05)
        assert object_bytes(settings, track["outputs"][rendition_artifact(bitrate)])
    assert peaks(settings, track)["length"] == pytest.approx(6.0 * 44100 / 512, abs=1)
    stored, _ = unpack_landmarks(object_bytes(settings, track["outputs"][FINGERPRINT_ARTIFACT]))
    assert np.array_equal(np.sort(stored), np.sort(_landmarks(a, settings, tmp_path)))
    # the record pins A's version, and notes B's once its event has come
    versions = aws.client("s3", settings).list_object_versions(
        Bucket=settings.uploads_bucket, Prefix=created["upload"]["key"]
    )["Versions"]
    version_b, version_a = (v["VersionId"] for v in versions)  # newest first
    assert track["source"]["version_id"] == version_a
    noted = wait_for(lambda: client.track(track["track_id"])["source"].get("ignored_versions"))
    assert list(noted) == [version_b] and noted[version_b]["etag"] == versions[0]["ETag"].strip('"')
    # B started no second workflow: every step ran once, one email
    time.sleep(2)  # anything B had started would have claimed a step by now
    again = client.track(track["track_id"])
    assert all(s["attempts"] == 1 for s in again["steps"].values())
    assert again["status"] == "published"
    assert len(emails_to(settings, f"{user}@users.trackflow.local")) == 1
    # two hosts read the original, each into its own cache, and both read A
    for host in (Path(settings.data_dir), second_host):
        cached = _cached(host, a.stat().st_size)
        assert a.read_bytes() in cached and b.read_bytes() not in cached, host
