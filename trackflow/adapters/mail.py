"""Sending one composed email through SES: the one place that knows the request's shape."""

from __future__ import annotations

from trackflow.adapters import aws
from trackflow.domain.emails import Email
from trackflow.settings import Settings

__all__ = ["send_email"]


def send_email(settings: Settings, address: str, email: Email) -> str:
    """Send ``email`` to ``address`` from the service's sender; returns SES's message id.
    Callers keep to the account's send rate (``RateLimiter("ses")``) before they call."""
    response = aws.client("ses", settings).send_email(
        Source=settings.email_sender,
        Destination={"ToAddresses": [address]},
        Message={
            "Subject": {"Data": email.subject, "Charset": "UTF-8"},
            "Body": {
                "Text": {"Data": email.text, "Charset": "UTF-8"},
                "Html": {"Data": email.html, "Charset": "UTF-8"},
            },
        },
    )
    return str(response["MessageId"])
