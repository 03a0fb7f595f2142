"""The copyright catalogue (administrators): reference works uploaded tracks are matched
against."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from trackflow.adapters.state.catalogue import WorkStatus
from trackflow.adapters.state.social import encode_cursor
from trackflow.api.dependencies import S3, Admin, AppSettings, Works
from trackflow.api.errors import ApiError
from trackflow.api.paging import Cursor, parse_cursor
from trackflow.api.schemas import WorkList, WorkRequest, WorkResponse
from trackflow.domain.keys import WORK_ID, catalogue_key
from trackflow.tasks import control

router = APIRouter()


@router.post("/v1/catalogue/works", status_code=201, response_model=WorkResponse)
def add_work(
    request: WorkRequest, caller: Admin, settings: AppSettings, works: Works, s3: S3
) -> WorkResponse:
    """Register a reference work: upload its recording with the presigned POST returned."""
    content_type = s3.accepted_type(request.content_type, request.size)
    work = works.create(
        title=request.title,
        owner=request.owner,
        status=WorkStatus.AWAITING_UPLOAD,
        added_by=caller.user_id,
    )
    key = catalogue_key(settings.uploads_prefix, work["work_id"], request.filename)
    work = works.update(work["work_id"], upload={"key": key}) or work
    return WorkResponse(work=work, upload=s3.upload_form(key, content_type, request.size))


@router.get("/v1/catalogue/works", response_model=WorkList)
def list_works(
    caller: Admin,
    works: Works,
    owner: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> WorkList:
    """The works in the catalogue (all, or one owner's)."""
    found, last = works.list(owner=owner, limit=limit, cursor=parse_cursor(cursor))
    return WorkList(works=found, next_cursor=encode_cursor(last))


@router.get("/v1/catalogue/works/{work_id}")
def get_work(work_id: str, caller: Admin, works: Works) -> dict[str, Any]:
    """One work and its indexing status."""
    work = works.get(work_id) if WORK_ID.match(work_id) else None
    if work is None:
        raise ApiError(404, "not_found", "no such work")
    return work


@router.delete("/v1/catalogue/works/{work_id}")
def delete_work(work_id: str, caller: Admin) -> dict[str, Any]:
    """Take a work out of the catalogue: it stops matching at once."""
    work = control.remove_work(work_id) if WORK_ID.match(work_id) else None
    if work is None:
        raise ApiError(404, "not_found", "no such work, or already removed")
    return work
