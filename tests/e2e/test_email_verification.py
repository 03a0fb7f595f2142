"""Verified email on the whole stack: an address typed into a profile gets its confirmation
link and nothing else until the link is followed; an address nobody confirmed gets nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.stack import client_for, emails_to, upload, wait_for
from trackflow.adapters import aws
from trackflow.adapters.state.users import UserStore
from trackflow.cli.client import ApiClient
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]


def _junk(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"<html><body>not a song</body></html>\n" * 100)
    return path


def _notified(client: ApiClient, track_id: str) -> dict | None:
    record = client.track(track_id)["notifications"].get("failed", {})
    return record if record.get("state") in ("sent", "suppressed") else None


def _failed_upload(client: ApiClient, path: Path) -> dict:
    track = client.wait(upload(client, path, "audio/mpeg"), timeout_s=120)
    assert track["status"] == "failed"
    record: dict = wait_for(lambda: _notified(client, track["track_id"]), timeout_s=60)
    return record


def test_an_unconfirmed_address_gets_its_link_and_no_outcome_email(
    settings: Settings, tmp_path: Path
):
    """A junk upload after typing in a victim's address: its failure email goes to the
    confirmed (default) address and the victim has only the link; once the link is followed,
    the next failure email goes to the new address."""
    user = f"e2e-ver-{uuid.uuid4().hex[:6]}"
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.org"
    client = client_for(settings, user)
    client.request("GET", "/v1/me")
    client.request("PATCH", "/v1/me", json={"email": victim})

    record = _failed_upload(client, _junk(tmp_path, "one.mp3"))
    assert record["state"] == "sent" and record["to"] == f"{user}@users.trackflow.local"
    [link_mail] = emails_to(settings, victim)  # the link, and nothing else
    assert "Confirm your email address" in link_mail["Subject"]

    found = re.search(r"/v1/me/email/verify\?token=[A-Za-z0-9_-]+", link_mail["Body"])
    assert found
    confirmed = httpx.post(f"{settings.api_url}{found.group(0)}", timeout=10)
    assert confirmed.status_code == 200, confirmed.text

    record = _failed_upload(client, _junk(tmp_path, "two.mp3"))
    assert record["state"] == "sent" and record["to"] == victim
    mails = wait_for(lambda: (m := emails_to(settings, victim)) and len(m) == 2 and m)
    assert "could not process" in mails[-1]["Subject"]


def test_an_address_stored_unconfirmed_before_verification_gets_nothing(
    settings: Settings, tmp_path: Path
):
    """A profile whose address was set the old way (no ``email_verified``): the outcome email
    is recorded suppressed, reason unverified, and nothing is sent to the address."""
    user = f"e2e-old-{uuid.uuid4().hex[:6]}"
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.org"
    client = client_for(settings, user)
    client.request("GET", "/v1/me")
    users = UserStore(aws.client("dynamodb", settings), settings.table("users"))
    users.update(user, email=victim, email_verified=False)  # as PATCH /v1/me used to store it

    record = _failed_upload(client, _junk(tmp_path, "old.mp3"))
    assert record["state"] == "suppressed" and record["reason"] == "unverified"
    assert emails_to(settings, victim) == []
