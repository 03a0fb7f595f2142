"""Copyright on the real stack: a registered work, re-encoded and cut short, is caught and the
uploader is told which work and where; an unrelated upload by the same user is published."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import audio, badinputs
from tests.support.browser import sign_in
from tests.support.stack import client_for, emails_to, upload_and_wait, wait_for
from trackflow.adapters import aws
from trackflow.cli.client import ApiClient
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings
from trackflow.tasks.catalogue import catalogue_store

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

EVADER = "e2e-evader"


def register_work(admin: ApiClient, path: Path, title: str, owner: str) -> dict:
    created = admin.request(
        "POST",
        "/v1/catalogue/works",
        json={"title": title, "owner": owner, "filename": path.name, "content_type": "audio/flac"},
    )
    admin.send_file(created["upload"], path)
    work_id = created["work"]["work_id"]

    def indexed() -> dict | None:
        work = admin.request("GET", f"/v1/catalogue/works/{work_id}")
        assert work["status"] != "failed", work
        return work if work["status"] == "active" else None

    return wait_for(indexed, timeout_s=180)


def test_a_registered_work_reencoded_and_cut_is_rejected_with_where_it_matched(
    settings: Settings, tmp_path: Path
):
    reference = audio.encode(
        audio.music(tmp_path / "ref.wav", seconds=45.0, seed=4242),
        "flac",
        tmp_path,
        name="reference",
    )
    admin = client_for(settings, "admin")
    work = register_work(admin, reference, "Protected Anthem", "big-label")
    assert work["landmarks"] > 1000
    excerpt = tmp_path / "my new song.mp3"
    audio.ffmpeg(
        "-ss",
        "17",
        "-t",
        "20",
        "-i",
        str(reference),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        str(excerpt),
    )
    pirate = client_for(settings, "e2e-pirate")
    track = upload_and_wait(pirate, excerpt)
    assert track["status"] == "rejected"
    assert track["error"]["code"] == "copyright_match"
    assert "Protected Anthem" in track["error"]["message"]
    [match] = track["copyright"]["matches"]
    assert (match["work_id"], match["owner"]) == (work["work_id"], "big-label")
    assert match["work_offset_s"] - match["upload_offset_s"] == pytest.approx(17.0, abs=0.1)
    assert match["matched_s"] > 15
    assert not [name for name in track["outputs"] if name.startswith("audio/")]
    for step in ("transcode_128", "index_track", "publish_feed"):
        assert track["steps"][step]["status"] == "skipped"
    [email] = wait_for(lambda: emails_to(settings, "e2e-pirate@users.trackflow.local"))
    assert "was not published" in email["Subject"]
    # the same user's own music is published
    own = write_track(SampleTrack("Original", "Pirate", seconds=8, seed=999), tmp_path / "o.mp3")
    assert upload_and_wait(pirate, own)["status"] == "published"


def test_a_published_track_protects_its_uploader(settings: Settings, tmp_path: Path):
    """Published tracks join the catalogue: another user's re-upload is caught, the owner's own
    re-upload is not."""
    song = write_track(
        SampleTrack("Home Grown", "Alice", seconds=15, seed=31337), tmp_path / "home grown.mp3"
    )
    alice = client_for(settings, "e2e-owner")
    published = upload_and_wait(alice, song)
    assert published["status"] == "published"
    work_id = published["catalogue"]["work_id"]
    admin = client_for(settings, "admin")
    wait_for(
        lambda: admin.request("GET", f"/v1/catalogue/works/{work_id}")["status"] == "active",
        timeout_s=120,
    )
    copy = upload_and_wait(client_for(settings, "e2e-copycat"), song)
    assert copy["status"] == "rejected"
    assert copy["copyright"]["matches"][0]["work_id"] == work_id
    again = upload_and_wait(alice, song)
    assert again["status"] == "published"
    assert work_id in again["copyright"]["own_works"]


def test_a_damaged_copy_ends_once_and_its_uploader_is_told_once(settings: Settings, tmp_path: Path):
    """Two steps may end the track: the input check (it is damaged) and the copyright check (it
    is a copy). Whichever ends it first, the other does not end it again, and the email step
    runs once."""
    source = audio.music(tmp_path / "fragile.wav", seconds=30.0, seed=2718)
    reference = audio.encode(source, "flac", tmp_path, name="reference")
    register_work(client_for(settings, "admin"), reference, "Fragile Anthem", "big-label")
    damaged_folder = tmp_path / "damaged"
    damaged_folder.mkdir()
    make_damaged, code = badinputs.CORPUS["flac cut in half"]

    clumsy = client_for(settings, "e2e-clumsy")
    track = upload_and_wait(clumsy, make_damaged(damaged_folder, source))

    assert (track["status"], track["error"]["code"]) in {
        ("failed", code),
        ("rejected", "copyright_match"),
    }

    def told() -> dict | None:  # the email step starts once the track has ended: maybe later
        now = clumsy.track(track["track_id"])
        return now if now["steps"]["notify_uploader"]["status"] == "succeeded" else None

    assert wait_for(told)["steps"]["notify_uploader"]["attempts"] == 1
    assert len(wait_for(lambda: emails_to(settings, "e2e-clumsy@users.trackflow.local"))) == 1


def test_only_administrators_manage_the_catalogue(settings: Settings):
    from trackflow.cli.client import ApiError

    user = client_for(settings, "e2e-nobody")
    with pytest.raises(ApiError) as refused:
        user.request("GET", "/v1/catalogue/works")
    assert refused.value.status == 403
    with pytest.raises(ApiError):
        user.request("GET", "/v1/reviews")


@pytest.mark.parametrize(
    ("chain", "tempo", "pitch", "words"),
    [
        ("asetrate=45864,aresample=44100", 1.04, 1.04, "sped up 4 %"),  # "nightcore"
        ("rubberband=pitch=0.943874", 1.0, 0.9439, "pitched down 1.0 semitones"),
    ],
    ids=["speed+4%", "pitch-1"],
)
def test_a_work_sped_up_or_pitch_shifted_is_rejected_with_the_change_named(
    settings: Settings,
    tmp_path: Path,
    browser: Any,
    chain: str,
    tempo: float,
    pitch: float,
    words: str,
):
    """The oldest evasions: the landmarks see nothing in common, the quads find the work and
    the factors, and the uploader reads how the work was changed, on the track's page too."""
    seed = 8801 if tempo > 1 else 8802  # seeds no other test uploads: a copy would be caught
    reference = audio.encode(
        audio.music(tmp_path / "ref.wav", seconds=40.0, seed=seed), "flac", tmp_path, name="ref"
    )
    admin = client_for(settings, "admin")
    work = register_work(admin, reference, f"Evaded Anthem {seed}", "big-label")
    assert work["quads"] > 100
    evasion = tmp_path / "totally original.mp3"
    audio.ffmpeg(
        *("-ss", "10", "-t", "22", "-i", str(reference), "-af", chain),
        *("-c:a", "libmp3lame", "-b:a", "128k", str(evasion)),
    )
    track = upload_and_wait(client_for(settings, EVADER), evasion)
    assert track["status"] == "rejected", track.get("copyright")
    assert track["error"]["code"] == "copyright_match"
    [match] = track["copyright"]["matches"]
    assert match["work_id"] == work["work_id"] and match["method"] == "quads"
    assert match["tempo_factor"] == pytest.approx(tempo, abs=0.01)
    assert match["pitch_factor"] == pytest.approx(pitch, abs=0.01)
    assert words in track["error"]["message"]
    page = browser.new_page()
    sign_in(page, settings.api_url, EVADER)
    page.goto(f"{settings.api_url}/app/#/track/{track['track_id']}")
    facts = page.locator(".facts")
    facts.wait_for()
    assert f"“Evaded Anthem {seed}” (big-label), {words}" in facts.inner_text()


def test_a_track_published_before_quads_gets_them_by_backfill_and_is_protected(
    settings: Settings, tmp_path: Path
):
    """A work from before quads existed has none; `trackflow backfill-quads` gives it quads
    from its normalised master in the bulk lane, and a slowed copy is then caught."""
    original = write_track(
        SampleTrack("Old Favourite", "Veteran", seconds=30, seed=8803), tmp_path / "old.mp3"
    )
    published = upload_and_wait(client_for(settings, "e2e-veteran"), original)
    assert published["status"] == "published", published.get("error")
    catalogue = catalogue_store(settings)
    work = wait_for(lambda: catalogue.work_for_track(published["track_id"]))
    aws.client("dynamodb", settings).update_item(  # as indexed before quads existed
        TableName=settings.table("catalogue"),
        Key={"work_id": {"S": work["work_id"]}},
        UpdateExpression="REMOVE quads_key",
    )
    done = subprocess.run(
        [sys.executable, "-m", "trackflow.cli", "backfill-quads"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "works sent for quads: " in done.stderr
    wait_for(lambda: (catalogue.get(work["work_id"]) or {}).get("quads_key"), timeout_s=120)
    slowed = tmp_path / "slowed.mp3"
    audio.ffmpeg(
        *("-ss", "5", "-t", "20", "-i", str(original), "-af", "asetrate=42336,aresample=44100"),
        *("-c:a", "libmp3lame", "-b:a", "128k", str(slowed)),
    )
    track = upload_and_wait(client_for(settings, "e2e-slower"), slowed)
    assert track["status"] == "rejected", track.get("copyright")
    [match] = track["copyright"]["matches"]
    assert match["kind"] == "published_track" and match["change"] == "slowed down 4 %"
    assert "already published on this service, slowed down 4 %" in track["error"]["message"]
