"""Headless Chromium for the web client's tests: Debian's browser (make installs it), driven by
Playwright, which downloads no browser of its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Without the networking flags, Chromium keeps calling Google's hosts, which a closed network
# refuses; as root it needs --no-sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


UNPACKED = Path(__file__).resolve().parents[2] / ".venv" / "chromium" / "chromium"  # no root


def chromium_path() -> str | None:
    return (
        os.environ.get("TRACKFLOW_CHROMIUM")
        or shutil.which("chromium")
        or (str(UNPACKED) if UNPACKED.exists() else None)
    )


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (a Playwright Browser); each test opens contexts, fresh profiles."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium: `make test` installs Debian's (or set TRACKFLOW_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, api_url: str, user: str) -> None:
    """Sign in on the web client (a local stack takes any name), as the API sends browsers."""
    page.goto(f"{api_url}/")
    page.get_by_label("Your name").fill(user)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Upload").wait_for()
