"""A changed email address: kept pending, and a link that confirms it sent to that address.

The link is sent from the API process, within the SES account's send rate that the workers
share: one SES call while the user waits for "check your inbox" anyway, so the answer can say
the mail left, and a failure to send is the request's (503) rather than a task's to retry
behind the user's back; a queue hop would add a Celery dependency to the API for one email.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from trackflow.adapters import aws
from trackflow.adapters.mail import send_email
from trackflow.adapters.state.ratelimit import RateLimiter
from trackflow.adapters.state.users import EmailVerifications, UserStore
from trackflow.api.errors import ApiError
from trackflow.api.limits import Limiter, Window, profile_windows, verification_windows
from trackflow.domain.emails import compose_verification, deliverable_address
from trackflow.logs import get_logger
from trackflow.settings import Settings

__all__ = ["VERIFY_PATH", "ProfileChanges"]

log = get_logger(__name__)

VERIFY_PATH = "/v1/me/email/verify"
# A request holds its worker this long at most for a send slot; past it the account's rate is
# booked up and the client is asked to come back
_SLOT_WAIT_S = 2.0


class ProfileChanges:
    """Profile changes of one caller, within their limits; a new address waits for its link."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore,
        verifications: EmailVerifications,
        limiter: Limiter,
    ) -> None:
        self._settings = settings
        self._users = users
        self._verifications = verifications
        self._limiter = limiter

    def apply(
        self, user_id: str, admin: bool, changes: dict[str, Any], email: str | None
    ) -> dict[str, Any]:
        """Apply ``changes`` and, if ``email`` is a new address, send it its link. Every limit
        (the caller's profile changes, the recipient's daily links) is taken before anything
        is written."""
        profile = self._users.ensure(user_id)
        # a new address, or the current one if it was never confirmed
        sending = email is not None and email != deliverable_address(profile)
        windows: list[Window] = [] if admin else profile_windows(self._settings, user_id)
        if sending and email is not None:
            windows += verification_windows(self._settings, email)
        self._limiter.take(windows)
        if changes:
            profile = self._users.update(user_id, **changes)
        if email is not None and not sending and "pending_email" in profile:
            profile = self._users.drop_pending_email(user_id)  # back to the confirmed one
        if sending and email is not None:
            profile = self._send_link(user_id, email)
        return profile

    def _send_link(self, user_id: str, address: str) -> dict[str, Any]:
        s = self._settings
        wait = RateLimiter(
            aws.client("dynamodb", s), s.table("idempotency"), "ses", s.email_rate_per_s
        ).reserve(max_wait_s=_SLOT_WAIT_S)
        if wait is None:
            raise ApiError(
                503,
                "email_busy",
                "we are sending too many emails right now; try again in a minute",
                headers={"Retry-After": "60"},
            )
        token = self._verifications.issue(user_id, address, s.email_verification_ttl_s)
        profile = self._users.request_email(user_id, address)
        link = f"{s.link_base}{VERIFY_PATH}?{urlencode({'token': token})}"
        email = compose_verification(
            user_id, address, link, max(1, s.email_verification_ttl_s // 3600)
        )
        time.sleep(wait)  # our slot: sending earlier would exceed the account's rate
        try:
            send_email(s, address, email)
        except (BotoCoreError, ClientError) as error:
            log.error("verification_email_failed", user_id=user_id, error=repr(error)[:300])
            raise ApiError(
                503,
                "email_unavailable",
                "we could not send the confirmation email; change the address again later",
            ) from error
        log.info("verification_email_sent", user_id=user_id)
        return profile
