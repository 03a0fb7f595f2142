"""The Celery shell of the workflow on a fake track store: it does what the engine decides, once,
and sends the step messages (no AWS, no broker)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from trackflow.domain.track import STAGES, Status, StepStatus, initial_steps
from trackflow.pipeline import flow
from trackflow.pipeline.flow import Decision, Move
from trackflow.tasks import workflow
from trackflow.tasks.app import app

CHECKS, RENDITIONS, PUBLICATION = STAGES


class FakeStore:
    """The conditional writes of TrackStore that the shell uses, on one in-memory track."""

    def __init__(self, track: dict[str, Any]) -> None:
        self.track = track
        self.launched = 0

    def claim_stage(self, track_id: str, stage: str) -> bool:
        if stage in self.track["stages"]:
            return False
        self.track["stages"][stage] = "now"
        return True

    def mark_launched(self, track_id: str) -> None:
        self.launched += 1

    def apply(self, track_id: str, move: Move, *, fields: Any = None) -> dict[str, Any] | None:
        if self.track["status"] not in flow.allowed_from(move):
            return None
        self.track["status"] = str(flow.TRANSITIONS[move].target)
        self.track.update(fields or {})
        return dict(self.track)


@pytest.fixture
def sent():
    """The step messages sent, as task names."""
    with mock.patch.object(app, "send_task") as send:
        yield lambda: [call.args[0].removeprefix("trackflow.") for call in send.call_args_list]


def a_track(status: Status = Status.PROCESSING, *over: flow.Stage) -> dict[str, Any]:
    track = {"track_id": "t", "status": str(status), "steps": initial_steps(), "stages": {}}
    for stage in over:
        track["stages"][stage.name] = "then"
        for step in stage.steps:
            track["steps"][step]["status"] = str(StepStatus.SUCCEEDED)
    return track


def test_advance_sends_the_next_stage_once_however_often_it_is_asked(sent):
    """Two reports of the stage's end send the renditions' three messages once."""
    store = FakeStore(a_track(Status.PROCESSING, CHECKS))
    workflow.advance(store, store.track)
    workflow.advance(store, store.track)
    assert sent() == list(RENDITIONS.steps)
    assert "renditions" in store.track["stages"]


def test_launch_stage_sends_chains_to_each_steps_queue_and_marks_the_first_stage(sent):
    """The first stage goes out as its three branches' first steps, and is marked launched."""
    store = FakeStore(a_track(Status.QUEUED))
    assert workflow.launch_stage(store, store.track, CHECKS)
    assert not workflow.launch_stage(store, store.track, CHECKS)
    assert workflow.launch_stage(store, store.track, CHECKS, force=True)
    assert sent() == ["extract_metadata", "analyse_waveform", "check_copyright"] * 2
    assert store.launched == 2


def test_the_last_step_publishes_the_track_once(sent):
    """A finished workflow is published by one conditional move; asked again, nothing happens."""
    store = FakeStore(a_track(Status.PROCESSING, CHECKS, RENDITIONS, PUBLICATION))
    workflow.advance(store, store.track)
    assert store.track["status"] == Status.PUBLISHED and "published_at" in store.track
    workflow.advance(store, store.track)
    assert sent() == []


def test_a_move_that_ends_the_track_unpublished_sends_the_email_alone_once(sent):
    """The writer that wins a rejection sends the outcome email; a second try sends nothing."""
    store = FakeStore(a_track(Status.HELD_FOR_REVIEW, CHECKS))
    assert workflow.move(store, "t", Move.REVIEW_REJECT) is not None
    assert workflow.move(store, "t", Move.REVIEW_REJECT) is None
    assert sent() == ["notify_uploader"]


def test_approval_starts_the_renditions(sent):
    """Approving a held track whose checks passed sends the renditions."""
    store = FakeStore(a_track(Status.HELD_FOR_REVIEW, CHECKS))
    workflow.move(store, "t", Move.APPROVE)
    assert sent() == list(RENDITIONS.steps)


def test_perform_does_nothing_for_nothing(sent):
    """The empty decision writes and sends nothing."""
    store = FakeStore(a_track())
    workflow.perform(store, store.track, Decision())
    assert sent() == [] and store.track["stages"] == {}
