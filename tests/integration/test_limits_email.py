"""Verified email on the emulator: a new address is pending until its link is followed, the
link is in the emulator's sent mail, and each address gets a bounded number of links a day."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from trackflow_devstack.emulator import sent_emails

from tests.support.stack import emails_to
from trackflow.adapters import aws
from trackflow.adapters.state.users import EmailVerifications
from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.settings import Settings

pytestmark = pytest.mark.usefixtures("emulator")


@pytest.fixture(scope="module")
def api(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user)}"}


def _address() -> str:
    return f"victim-{uuid.uuid4().hex[:8]}@example.org"


def _link(settings: Settings, address: str) -> str:
    [mail] = emails_to(settings, address)
    found = re.search(r"https?://\S+/v1/me/email/verify\?token=[A-Za-z0-9_-]+", mail["Body"])
    assert found, mail
    parts = urlsplit(found.group(0))
    return f"{parts.path}?{parts.query}"


def _change(api: TestClient, settings: Settings, user: str, address: str) -> Any:
    return api.patch("/v1/me", headers=_auth(settings, user), json={"email": address})


def test_a_new_address_stays_pending_and_gets_only_its_link(api: TestClient, settings: Settings):
    """PATCH email keeps the address pending, mail still goes to the old one, and the new one
    receives exactly one email: the confirmation link."""
    user, address = f"ver-{uuid.uuid4().hex[:8]}", _address()
    changed = _change(api, settings, user, address)
    assert changed.status_code == 200, changed.text
    profile = changed.json()
    assert profile["email"] == f"{user}@users.trackflow.local"  # unchanged until confirmed
    assert profile["pending_email"] == address
    [mail] = emails_to(settings, address)
    assert mail["Subject"] == "Confirm your email address for trackflow"
    assert mail["Source"] == settings.email_sender


def test_following_the_link_confirms_the_address_once(api: TestClient, settings: Settings):
    """GET shows a page and confirms nothing (mail scanners fetch links); POST confirms; the
    same link a second time is refused in the error shape."""
    user, address = f"ver-{uuid.uuid4().hex[:8]}", _address()
    _change(api, settings, user, address)
    link = _link(settings, address)
    page = api.get(link)
    assert page.status_code == 200 and "<form" in page.text
    assert "pending_email" in api.get("/v1/me", headers=_auth(settings, user)).json()
    confirmed = api.post(link)  # no bearer token: the link is the credential
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"user_id": user, "email": address}
    profile = api.get("/v1/me", headers=_auth(settings, user)).json()
    assert profile["email"] == address and profile["email_verified"] is True
    assert "pending_email" not in profile
    again = api.post(link)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_verification"


def test_a_link_is_void_once_expired_or_once_another_address_is_asked_for(
    api: TestClient, settings: Settings
):
    """An expired token and a token for an address since replaced confirm nothing."""
    user, first, second = f"ver-{uuid.uuid4().hex[:8]}", _address(), _address()
    _change(api, settings, user, first)
    stale = _link(settings, first)
    _change(api, settings, user, second)
    assert api.post(stale).status_code == 400
    links = EmailVerifications(aws.client("dynamodb", settings), settings.table("idempotency"))
    expired = links.issue(user, second, ttl_s=60, now=0.0)  # expired in 1970
    assert api.post(f"/v1/me/email/verify?token={expired}").status_code == 400
    assert api.get("/v1/me", headers=_auth(settings, user)).json()["pending_email"] == second


def test_an_address_gets_a_bounded_number_of_links_a_day_whoever_asks(settings: Settings):
    """Three users type in one victim's address, two links a day allowed: the third is 429
    with Retry-After, and the victim got two emails."""
    api = TestClient(
        create_app(settings.model_copy(update={"email_verifications_per_address_per_day": 2}))
    )
    address = _address()
    users = [f"bomber-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    assert _change(api, settings, users[0], address).status_code == 200
    assert _change(api, settings, users[1], address.upper()).status_code == 200
    refused = _change(api, settings, users[2], address)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 24 * 3600
    assert "pending_email" not in api.get("/v1/me", headers=_auth(settings, users[2])).json()
    sent = [
        m
        for m in sent_emails(settings.emulator_url)
        if address in [a.lower() for a in m["Destination"].get("ToAddresses", [])]
    ]
    assert len(sent) == 2


def test_an_administrator_setting_an_address_confirms_it(api: TestClient, settings: Settings):
    """PATCH /v1/users/{id} by an administrator sets a confirmed address, and sends no link."""
    user, address = f"ver-{uuid.uuid4().hex[:8]}", _address()
    api.get("/v1/me", headers=_auth(settings, user))
    set_by_admin = api.patch(
        f"/v1/users/{user}", headers=_auth(settings, "admin"), json={"email": address}
    )
    assert set_by_admin.status_code == 200
    assert set_by_admin.json()["email_verified"] is True
    assert emails_to(settings, address) == []
