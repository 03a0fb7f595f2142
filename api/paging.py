"""Paged listings: the query parameters they share and their opaque cursors."""

from typing import Annotated, Any

from fastapi import Query

from trackflow.adapters.state.social import decode_cursor
from trackflow.api.errors import ApiError

__all__ = ["Cursor", "PageSize", "own_cursor", "parse_cursor"]

PageSize = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=2000)]


def parse_cursor(cursor: str | None) -> dict[str, Any] | None:
    """Where a page starts: the cursor the previous page returned (None: the first page)."""
    try:
        return decode_cursor(cursor)
    except ValueError as error:
        raise ApiError(400, "bad_cursor", str(error)) from error


def own_cursor(cursor: str | None, field: str, user_id: str, listing: str) -> dict[str, Any] | None:
    """A cursor into one of the caller's own listings, ``field`` naming whose it is: a cursor
    handed on from someone else's listing must not page through theirs."""
    start = parse_cursor(cursor)
    if start and start.get(field) != user_id:
        raise ApiError(400, "bad_cursor", f"the cursor belongs to another {listing}")
    return start
