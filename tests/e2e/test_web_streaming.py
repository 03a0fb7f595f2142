"""The track page plays the HLS ladder in a real browser (headless Chromium) against the running
stack: through hls.js, with the variant shown and a quality choice that keeps the position; the
browser's own HLS when hls.js cannot load; the MP3s when the stream cannot play."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.browser import sign_in
from tests.support.stack import client_for, upload_and_wait, wait_for
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

USER = "web-hls"
SECONDS = 14


@pytest.fixture(scope="module")
def track(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = write_track(
        SampleTrack("Ladder Song", "Web Tester", seconds=SECONDS, seed=2929),
        tmp_path_factory.mktemp("hls") / "Ladder Song.mp3",
    )
    published = upload_and_wait(client_for(settings, USER), path)
    assert published["status"] == "published", published.get("error")
    return published


def open_track(page: Any, settings: Settings, track_id: str) -> Any:
    """Sign in on the page, open the track's page; its audio element."""
    sign_in(page, settings.api_url, USER)
    page.goto(f"{settings.api_url}/app/#/track/{track_id}")
    page.get_by_role("heading", name="Ladder Song").wait_for()
    return page.locator("audio")


def now(audio: Any) -> float:
    return audio.evaluate("a => a.currentTime")


def engine(audio: Any) -> str | None:
    return audio.get_attribute("data-engine")


def play_until(audio: Any, seconds: float) -> None:
    audio.evaluate("a => a.play()")
    wait_for(lambda: now(audio) > seconds, timeout_s=20, interval_s=0.1)


def switch(page: Any, audio: Any, label: str, arrived: Any) -> tuple[float, float]:
    """Choose a quality while playing; the position before and once ``arrived()`` holds."""
    before, started = now(audio), time.monotonic()
    page.get_by_label(label, exact=True).check()
    wait_for(arrived, timeout_s=20, interval_s=0.05)
    after = now(audio)
    assert before - 0.5 <= after <= before + (time.monotonic() - started) + 0.5, (before, after)
    return before, after


def test_hls_js_plays_the_ladder_shows_the_variant_and_switches_in_place(
    settings: Settings, browser: Any, track: dict[str, Any]
):
    page = browser.new_page()
    rungs: list[str] = []  # the variant playlists the page loads
    page.on(
        "request",
        lambda request: (
            rungs.append(request.url.split("/stream/")[1].split("/")[0])
            if "/stream/" in request.url and "/index.m3u8" in request.url
            else None
        ),
    )
    audio = open_track(page, settings, track["track_id"])
    wait_for(lambda: engine(audio) == "hls.js", timeout_s=20)
    assert audio.evaluate("a => a.currentSrc").startswith("blob:")  # Media Source Extensions
    quality = page.locator("fieldset.quality")
    labels = [" ".join(text.split()) for text in quality.locator("label").all_inner_texts()]
    assert labels == [
        "Auto", "AAC 160 kbps", "AAC 96 kbps", "Opus 96 kbps",
        "MP3 128 kbps", "MP3 192 kbps", "MP3 320 kbps",
    ]  # fmt: skip
    assert page.get_by_label("Auto", exact=True).is_checked()
    assert quality.locator("input:disabled").count() == 0  # Chromium decodes every rung

    # it plays, and the page says which rung
    play_until(audio, 1.0)
    shown = page.locator(".now-playing")
    wait_for(lambda: audio.get_attribute("data-variant"), timeout_s=10)
    label = {"aac160": "AAC 160 kbps", "aac96": "AAC 96 kbps", "opus96": "Opus 96 kbps"}
    variant = audio.get_attribute("data-variant")
    assert f"Streaming {label[variant]} (Auto)" in shown.inner_text()
    assert "hls.js" in shown.inner_text()

    # to the other codec, in place: the position kept, playback going on, its playlist loaded
    target = "opus96" if variant.startswith("aac") else "aac160"
    _, at = switch(
        page, audio, label[target], lambda: audio.get_attribute("data-variant") == target
    )
    assert target in rungs
    assert f"Streaming {label[target]} · HLS through hls.js" in shown.inner_text()
    wait_for(lambda: now(audio) > at + 1.0, timeout_s=15, interval_s=0.1)
    assert not audio.evaluate("a => a.paused")

    # the waveform seeks whatever plays: a click at a quarter, then the arrow key (+5 s)
    canvas = page.locator("canvas.waveform")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.25, "y": box["height"] / 2})
    assert now(audio) == pytest.approx(0.25 * SECONDS, abs=0.5)
    wait_for(lambda: now(audio) > 0.25 * SECONDS + 0.3, timeout_s=15, interval_s=0.1)
    before = now(audio)
    canvas.press("ArrowRight")
    assert now(audio) == pytest.approx(before + 5, abs=0.6)
    wait_for(lambda: now(audio) > before + 5.3, timeout_s=15, interval_s=0.1)

    # to an MP3 and back to the stream, the position kept each time
    audio.evaluate("a => { a.currentTime = 2; }")
    switch(page, audio, "MP3 128 kbps", lambda: engine(audio) == "mp3" and now(audio) > 0)
    assert "/audio/128.mp3" in audio.evaluate("a => a.currentSrc")
    assert shown.inner_text() == "Playing MP3 128 kbps"
    switch(page, audio, "AAC 96 kbps", lambda: audio.get_attribute("data-variant") == "aac96")
    assert engine(audio) == "hls.js"
    at = now(audio)
    wait_for(lambda: now(audio) > at + 0.5, timeout_s=15, interval_s=0.1)

    # the loudness a player aims for
    facts = page.locator(".facts").inner_text()
    assert "LUFS integrated" in facts and "to reach -14 LUFS" in facts, facts


def test_the_browsers_own_hls_plays_when_hls_js_cannot_load(
    settings: Settings, browser: Any, track: dict[str, Any]
):
    page = browser.new_page()
    page.route("**/vendor/hls.js/**", lambda route: route.fulfill(status=404))
    audio = open_track(page, settings, track["track_id"])
    # Chromium has HLS of its own (canPlayType 'maybe'): the page hands it one variant's
    # playlist, the best AAC (left to choose from the master, it stalls on the AAC/Opus switch)
    wait_for(lambda: engine(audio) == "native", timeout_s=20)
    source = "a => a.currentSrc"
    wait_for(lambda: "/stream/aac160/index.m3u8" in audio.evaluate(source), timeout_s=10)
    assert audio.get_attribute("data-variant") == "aac160"
    shown = page.locator(".now-playing")
    assert shown.inner_text() == "Streaming AAC 160 kbps · the browser's own HLS"
    assert page.get_by_label("AAC 160 kbps").is_checked()
    assert page.get_by_label("Auto", exact=True).count() == 0
    play_until(audio, 1.0)
    switch(
        page,
        audio,
        "Opus 96 kbps",
        lambda: "/stream/opus96/index.m3u8" in audio.evaluate(source) and now(audio) > 0,
    )
    assert shown.inner_text() == "Streaming Opus 96 kbps · the browser's own HLS"
    at = now(audio)
    wait_for(lambda: now(audio) > at + 0.5, timeout_s=15, interval_s=0.1)


def test_the_mp3s_play_when_the_stream_cannot(
    settings: Settings, browser: Any, track: dict[str, Any]
):
    # the master playlist missing: hls.js gives up (a fatal error), the page says so
    page = browser.new_page()
    page.route("**/stream/master.m3u8*", lambda route: route.fulfill(status=404))
    audio = open_track(page, settings, track["track_id"])
    wait_for(lambda: engine(audio) == "mp3", timeout_s=20)
    assert "/audio/128.mp3" in audio.evaluate("a => a.currentSrc")
    assert "The stream cannot play here" in page.locator(".notice").inner_text()
    assert page.get_by_label("MP3 128 kbps").is_checked()
    assert page.get_by_label("Opus 96 kbps").is_disabled()
    play_until(audio, 0.5)

    # a track the API offers no stream for: the MP3s, and no stream choices
    page = browser.new_page()

    def without_hls(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        body["hls"], body["stream"] = None, []
        route.fulfill(response=answer, body=json.dumps(body))

    page.route("**/v1/tracks/*/playback", without_hls)
    audio = open_track(page, settings, track["track_id"])
    wait_for(lambda: engine(audio) == "mp3", timeout_s=20)
    assert page.locator(".notice").inner_text() == ""
    assert page.get_by_label("Auto", exact=True).count() == 0
    play_until(audio, 0.5)
