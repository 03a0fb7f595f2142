"""The liveness probe load balancers and `trackflow up` poll; it takes no token."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}
