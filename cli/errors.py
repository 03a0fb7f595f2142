"""The API's refusal as an exception, in a module of its own: the root group catches it for
every command, and importing it must not cost a role that never calls the API (httpx)."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
