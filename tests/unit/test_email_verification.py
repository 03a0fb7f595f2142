"""Verified email, as pure rules: which address may receive mail, and the link's email."""

from __future__ import annotations

from trackflow.domain.emails import compose_verification, deliverable_address, local_address


def test_the_default_local_address_is_deliverable_without_a_flag():
    """A profile made before verification existed keeps getting mail at our own mailbox."""
    assert deliverable_address({"user_id": "ann", "email": local_address("ann")}) == (
        "ann@users.trackflow.local"
    )


def test_an_address_typed_in_is_deliverable_only_once_confirmed():
    """An address without ``email_verified`` (as PATCH /v1/me stored it) gets nothing."""
    typed = {"user_id": "ann", "email": "victim@example.org"}
    assert deliverable_address(typed) is None
    assert deliverable_address({**typed, "email_verified": False}) is None
    assert deliverable_address({**typed, "email_verified": True}) == "victim@example.org"


def test_a_pending_address_is_never_where_mail_goes():
    """Mail goes to the confirmed address while another waits for its link."""
    profile = {
        "user_id": "ann",
        "email": "ann@example.org",
        "email_verified": True,
        "pending_email": "victim@example.org",
    }
    assert deliverable_address(profile) == "ann@example.org"


def test_the_verification_email_carries_the_link_and_says_who_asked():
    """The mail names the account and the link, in text and HTML (escaped)."""
    email = compose_verification("ann", "a&b@example.org", "http://x/v?token=abc", 24)
    assert "http://x/v?token=abc" in email.text and "ann" in email.text
    assert "a&amp;b@example.org" in email.html and 'href="http://x/v?token=abc"' in email.html
    assert "24 hours" in email.text
