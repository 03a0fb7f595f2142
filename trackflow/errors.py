"""Errors that say what to do: give up on the upload, or try the step again later.

A task that retried every exception would retry a corrupt upload for ever; each class here says
whether another try can succeed (``retryable``) and carries the code the track record shows.
"""

from __future__ import annotations

__all__ = [
    "InputRejected",
    "NotReady",
    "TrackflowError",
    "TransientError",
    "WaitForSlot",
]


class TrackflowError(Exception):
    """Base of trackflow's errors; ``code`` is what the track record and the API show.

    ``message`` is read by the uploader: a sentence of ours, never a tool's output, a memory
    address or a path on a worker. What a tool said goes in ``detail``, which is logged and never
    recorded (``as_record`` leaves it out).
    """

    code = "internal_error"
    retryable = False

    def __init__(self, message: str, code: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code:
            self.code = code

    def as_record(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InputRejected(TrackflowError):
    """The upload itself is unusable (not audio, corrupt, too long, ...): never retried."""

    code = "invalid_input"


class TransientError(TrackflowError):
    """Something outside the upload failed and may work on another try."""

    code = "transient_error"
    retryable = True


class WaitForSlot(TransientError):
    """A shared rate limit gave this task a slot in the future: run again then (not a failure)."""

    code = "waiting_for_slot"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"waiting {retry_after_s:.1f} s for a send slot")
        self.retry_after_s = retry_after_s


class NotReady(TransientError):
    """A step's inputs or its turn are not there yet: try again soon."""

    code = "not_ready"
