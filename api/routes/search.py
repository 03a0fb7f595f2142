"""Search over published tracks."""

from typing import Annotated

from fastapi import APIRouter, Query

from trackflow.api.dependencies import Caller, Search
from trackflow.api.paging import PageSize
from trackflow.api.schemas import SearchPage

router = APIRouter()


@router.get("/v1/search", response_model=SearchPage)
def search(
    caller: Caller,
    index: Search,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: PageSize = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchPage:
    """Published tracks, ranked; prefix matching as you type, blind to case and accents."""
    hits, total = index.search(q, limit=limit, offset=offset)
    return SearchPage(hits=[h.as_record() for h in hits], total=total, offset=offset, limit=limit)
