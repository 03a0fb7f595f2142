"""The track: its statuses, the steps of its workflow and the record users see. Pure data.

This module knows which steps exist, which worker group runs each, how much of the work each
represents, and how they are laid out in stages (which the API draws). What the layout means,
the joins, gates and allowed status transitions, is ``trackflow.pipeline.flow``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from trackflow.settings import Lane, WorkerGroup

__all__ = [
    "ACTIVE",
    "STAGES",
    "STEPS",
    "STEP_NAMES",
    "TERMINAL",
    "Stage",
    "Status",
    "StepSpec",
    "StepStatus",
    "lane_of",
    "progress",
    "public_record",
    "queued_s",
]


class Status(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    PROCESSING = "processing"
    HELD_FOR_REVIEW = "held_for_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"


TERMINAL = frozenset({Status.PUBLISHED, Status.REJECTED, Status.FAILED})
ACTIVE = frozenset({Status.QUEUED, Status.PROCESSING})


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


STEP_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.FAILED})


@dataclass(frozen=True)
class StepSpec:
    name: str
    group: WorkerGroup
    weight: int  # share of a typical track's processing time, for progress


STEPS: tuple[StepSpec, ...] = (
    StepSpec("extract_metadata", WorkerGroup.IO, 2),
    StepSpec("resize_artwork", WorkerGroup.CPU, 4),
    StepSpec("analyse_waveform", WorkerGroup.CPU, 8),
    StepSpec("normalise_audio", WorkerGroup.CPU, 12),
    StepSpec("check_copyright", WorkerGroup.CPU, 8),
    StepSpec("transcode_128", WorkerGroup.CPU, 18),
    StepSpec("transcode_192", WorkerGroup.CPU, 20),
    StepSpec("transcode_320", WorkerGroup.CPU, 20),
    StepSpec("stream_ladder", WorkerGroup.CPU, 20),
    StepSpec("index_track", WorkerGroup.IO, 2),
    StepSpec("publish_feed", WorkerGroup.IO, 3),
    StepSpec("notify_uploader", WorkerGroup.IO, 3),
)
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)
STEP_BY_NAME: Mapping[str, StepSpec] = {step.name: step for step in STEPS}
# the MP3s (download and preview files) and the HLS ladder (streaming), side by side
RENDITION_STEPS: tuple[str, ...] = (
    "transcode_128",
    "transcode_192",
    "transcode_320",
    "stream_ladder",
)
PUBLISH_STEPS: tuple[str, ...] = ("index_track", "publish_feed", "notify_uploader")


@dataclass(frozen=True)
class Stage:
    """Branches that run side by side, each a chain of steps; the stage is over when every
    step in it has ended, and only then does the next stage start."""

    name: str
    branches: tuple[tuple[str, ...], ...]

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(step for branch in self.branches for step in branch)


# The product's picture: tags and artwork, beside the audio analysis and the copyright check;
# only when both have passed, the renditions; then publication.
STAGES: tuple[Stage, ...] = (
    Stage(
        "checks",
        (
            ("extract_metadata", "resize_artwork"),
            ("analyse_waveform", "normalise_audio"),
            ("check_copyright",),
        ),
    ),
    Stage("renditions", tuple((step,) for step in RENDITION_STEPS)),
    Stage("publication", tuple((step,) for step in PUBLISH_STEPS)),
)
STAGE_BY_NAME: Mapping[str, Stage] = {stage.name: stage for stage in STAGES}


def queued_s(track: Mapping[str, Any], step: str) -> float | None:
    """Seconds between ``step`` being ready (its stage launched, or the step before it in its
    branch finished) and its start; None unless both are recorded."""
    ready, started = _ready_at(track, step), track["steps"].get(step, {}).get("started_at")
    if ready is None or started is None:
        return None
    waited = datetime.fromisoformat(started) - datetime.fromisoformat(ready)
    return max(0.0, waited.total_seconds())


def _ready_at(track: Mapping[str, Any], step: str) -> str | None:
    for stage in STAGES:
        for branch in stage.branches:
            if step in branch:
                position = branch.index(step)
                if position == 0:
                    return track.get("stages", {}).get(stage.name)
                return track["steps"].get(branch[position - 1], {}).get("finished_at")
    raise KeyError(step)


def progress(status: str, steps: Mapping[str, Mapping[str, Any]]) -> int:
    """0-100: the weighted share of steps finished; 100 once the track is terminal."""
    if status in TERMINAL:
        return 100
    total = sum(step.weight for step in STEPS)
    done = sum(step.weight for step in STEPS if steps.get(step.name, {}).get("status") in STEP_DONE)
    return min(99, round(100 * done / total))


# Fields of the stored item that are bookkeeping, not for users.
_PRIVATE_FIELDS = frozenset({"upload", "launch", "version"})


def public_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """The track record as the API and the CLI show it."""
    record = {k: v for k, v in item.items() if k not in _PRIVATE_FIELDS}
    record["progress"] = progress(item["status"], item.get("steps", {}))
    record["steps"] = {
        name: item.get("steps", {}).get(name, {"status": StepStatus.PENDING, "attempts": 0})
        for name in STEP_NAMES
    }
    return record


def initial_steps() -> dict[str, dict[str, Any]]:
    return {name: {"status": str(StepStatus.PENDING), "attempts": 0} for name in STEP_NAMES}


def lane_of(track: Mapping[str, Any]) -> Lane:
    """The lane a track's work runs in (the standard one unless its account has its own)."""
    return Lane(track.get("lane", Lane.STANDARD))
