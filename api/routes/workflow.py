"""The workflow's shape, so that clients draw it from the pipeline rather than a copy."""

from fastapi import APIRouter

from trackflow.api.dependencies import Caller
from trackflow.api.schemas import Workflow
from trackflow.domain.track import STAGES

router = APIRouter()


@router.get("/v1/workflow", response_model=Workflow)
def workflow(caller: Caller) -> Workflow:
    """The workflow's stages, each of branches that run side by side (for drawing it)."""
    return Workflow(
        stages=[
            {"name": stage.name, "branches": [list(branch) for branch in stage.branches]}
            for stage in STAGES
        ]
    )
