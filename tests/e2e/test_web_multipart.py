"""The web client's uploads in parts, in a real browser (headless Chromium) against the running
stack: a large file goes up in parts, several at once, each with the CRC32 the page computed; a
part that S3 refuses once is tried again; the page reloaded mid-upload, the same file chosen
again resumes from what S3 holds; Cancel aborts the upload."""

from __future__ import annotations

import base64
import hashlib
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from tests.support.audio import pad_mp3
from tests.support.browser import sign_in
from tests.support.stack import client_for
from trackflow.adapters import aws
from trackflow.api.app import create_app
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

MIB = 1024**2
PART = 5 * MIB
SIZE = 16_500_000  # four parts: three of 5 MiB and a shorter last one
RESUME_KEY = "trackflow.multipart"  # where the page keeps its unfinished uploads


def long_track(tmp_path: Path, title: str, seed: int) -> Path:
    """An MP3 of SIZE bytes (five seconds of audio behind a padded ID3 tag, which the input
    gate takes up to 16 MiB): several parts, quick to process."""
    path = write_track(
        SampleTrack(title, "Web Parts", seconds=5, seed=seed), tmp_path / f"{title}.mp3"
    )
    return pad_mp3(path, SIZE)


def lower_the_threshold(page: Any, settings: Settings) -> None:
    """The stack's API sends only files above 64 MiB in parts. As tests/e2e/test_multipart.py
    does, the upload is created by an API whose threshold is 6 MiB (same tables, same bucket):
    the page's POST /v1/uploads is answered by it; every other call goes to the stack's API."""
    small = settings.model_copy(
        update={"multipart_threshold_bytes": 6 * MIB, "multipart_part_bytes": PART}
    )
    api = TestClient(create_app(small), base_url=settings.api_url)

    def create(route: Any) -> None:
        request = route.request
        if request.method != "POST":
            route.fallback()
            return
        answer = api.post(
            "/v1/uploads",
            content=request.post_data_buffer,
            headers={
                "Authorization": request.headers["authorization"],
                "Content-Type": "application/json",
            },
        )
        route.fulfill(
            status=answer.status_code,
            body=answer.content,
            headers={"Content-Type": answer.headers["content-type"]},
        )

    page.route(f"{settings.api_url}/v1/uploads", create)


def part_number(url: str) -> int | None:
    """The part a presigned UploadPart URL sends, None for any other URL."""
    query = parse_qs(urlsplit(url).query)
    return int(query["partNumber"][0]) if "uploadId" in query and "partNumber" in query else None


def is_part(url: str) -> bool:
    return part_number(url) is not None


def poll(page: Any, check: Any, timeout_ms: int = 30_000) -> Any:
    """Wait for ``check()`` while Playwright runs the page's routes (time.sleep would hold
    them: the sync API handles a route only inside one of its calls)."""
    for _ in range(timeout_ms // 100):
        value = check()
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"still waiting after {timeout_ms / 1000:.0f} s")


def test_a_large_file_goes_up_in_parts_and_resumes_after_a_reload(
    settings: Settings, browser: Any, tmp_path: Path
):
    audio = long_track(tmp_path, "Web Long Mix", seed=7707)
    user = f"web-mp-{uuid.uuid4().hex[:6]}"
    api = client_for(settings, user)
    page = browser.new_page()
    lower_the_threshold(page, settings)
    sign_in(page, settings.api_url, user)

    # Parts 1 and 2 go through (part 1 after S3 said SlowDown once: the page tries it again);
    # the others are held, so that the upload is mid-way when the page reloads.
    tries: list[int] = []
    held: list[int] = []

    def parts(route: Any) -> None:
        number = part_number(route.request.url)
        tries.append(number)
        if number == 1 and tries.count(1) == 1:
            route.fulfill(
                status=503,
                headers={
                    "Content-Type": "application/xml",
                    "Access-Control-Allow-Origin": settings.api_url,
                },
                body="<Error><Code>SlowDown</Code><Message>Slow down.</Message></Error>",
            )
        elif number <= 2:
            route.continue_()
        else:
            held.append(number)  # never answered: the reload cancels it

    page.route(is_part, parts)
    page.locator("#files").set_input_files(str(audio))
    card = page.locator("li.upload")
    track_id = poll(page, lambda: card.get_attribute("data-track-id"))
    poll(page, lambda: len(api.request("GET", f"/v1/uploads/{track_id}/parts")["uploaded"]) == 2)
    poll(page, lambda: sorted(held) == [3, 4])  # the four parts went at once
    assert tries.count(1) == 2 and tries.count(2) == 1, tries
    saved = page.evaluate(f"JSON.parse(localStorage.getItem('{RESUME_KEY}'))")
    assert [(e["track_id"], e["name"], e["size"], e["part_size"]) for e in saved] == [
        (track_id, audio.name, SIZE, PART)
    ]

    # the bucket lets the page PUT a part with its checksum header and read the ETag (the
    # browser's preflight, asked here: routed requests get Playwright's own answer to it)
    part_3 = audio.read_bytes()[2 * PART : 3 * PART]
    checksum = base64.b64encode(zlib.crc32(part_3).to_bytes(4, "big")).decode()
    url = api.request(
        "POST",
        f"/v1/uploads/{track_id}/parts",
        json={"parts": [{"number": 3, "checksum_crc32": checksum}]},
    )["parts"][0]["url"]
    preflight = httpx.options(
        url,
        headers={
            "Origin": settings.api_url,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-amz-checksum-crc32",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == settings.api_url
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] in ("*", "x-amz-checksum-crc32")
    assert "ETag" in preflight.headers["Access-Control-Expose-Headers"]

    page.reload()  # the held parts are cancelled with the page that sent them
    # from here every request goes as the page sent it (unrouting before the reload would
    # have let the held parts go on)
    page.unroute_all(behavior="ignoreErrors")
    interrupted = page.get_by_role("region", name="Interrupted uploads")
    expect(interrupted).to_contain_text(audio.name)
    # the bar's values from the first one: the resumed upload starts at the bytes S3 holds
    page.evaluate(
        """() => {
            window.barValues = [];
            new MutationObserver((records) => {
                for (const r of records) {
                    if (r.target.matches('progress')) window.barValues.push(r.target.value);
                }
            }).observe(document.getElementById('main'),
                       { attributes: true, subtree: true, attributeFilter: ['value'] });
        }"""
    )
    resumed: list[int] = []
    page.on(
        "request",
        lambda r: r.method == "PUT" and is_part(r.url) and resumed.append(part_number(r.url)),
    )
    page.locator("#files").set_input_files(str(audio))
    card = page.locator("li.upload")
    expect(card.locator(".detail")).to_contain_text("Uploaded", timeout=30_000)
    assert card.get_attribute("data-track-id") == track_id  # the same upload, not a new one
    assert sorted(resumed) == [3, 4]  # only the parts S3 did not hold
    values = page.evaluate("window.barValues")
    assert values[0] == round(100 * 2 * PART / SIZE) and values[-1] == 100, values
    assert page.evaluate(f"localStorage.getItem('{RESUME_KEY}')") == "[]"
    expect(interrupted).to_be_empty()

    # S3 holds the file's very bytes, and the track is admitted and processed
    track = poll(page, lambda: (t := api.track(track_id))["status"] != "awaiting_upload" and t)
    stored = aws.client("s3", settings).get_object(
        Bucket=settings.uploads_bucket, Key=track["source"]["key"], ChecksumMode="ENABLED"
    )
    data = audio.read_bytes()
    assert stored["ContentLength"] == SIZE
    assert stored["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert track["status"] != "failed", track.get("error")
    card.locator('[data-status="published"]').wait_for(timeout=120_000)


def test_cancel_aborts_an_upload_in_parts(settings: Settings, browser: Any, tmp_path: Path):
    audio = long_track(tmp_path, "Web Cancelled Mix", seed=7708)
    user = f"web-mp-{uuid.uuid4().hex[:6]}"
    page = browser.new_page()
    lower_the_threshold(page, settings)
    sign_in(page, settings.api_url, user)
    held: list[Any] = []
    page.route(is_part, lambda route: held.append(route))  # no part gets anywhere
    page.locator("#files").set_input_files(str(audio))
    card = page.locator("li.upload")
    poll(page, lambda: len(held) == 4)  # four parts at once
    card.get_by_role("button", name="Cancel").click()
    expect(card.get_by_role("alert")).to_have_text("Cancelled.")
    track = client_for(settings, user).track(card.get_attribute("data-track-id"))
    assert track["status"] == "failed"
    assert track["error"]["code"] == "upload_aborted"
    assert page.evaluate(f"localStorage.getItem('{RESUME_KEY}')") == "[]"
