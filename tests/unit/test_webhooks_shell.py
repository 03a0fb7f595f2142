"""The workflow shell records an outcome's webhook event where it decides the outcome email:
once, by the writer that won the move (no AWS: the hook is recorded, tests/unit/conftest.py)."""

from __future__ import annotations

from typing import Any
from unittest import mock

from tests.unit.test_workflow_shell import CHECKS, PUBLICATION, RENDITIONS, FakeStore, a_track
from trackflow.domain.track import Status
from trackflow.pipeline.flow import Move
from trackflow.tasks import workflow
from trackflow.tasks.app import app


def test_publication_records_one_published_event(_no_webhook_io: list[tuple[str, Any]]):
    """The last step publishes once and asks for track.published; a report after that asks
    again (the event's id makes the second a no-op: tests/integration/test_webhooks.py)."""
    store = FakeStore(a_track(Status.PROCESSING, CHECKS, RENDITIONS, PUBLICATION))
    with mock.patch.object(app, "send_task"):
        workflow.advance(store, store.track)
        workflow.advance(store, store.track)
    assert store.track["status"] == Status.PUBLISHED
    assert _no_webhook_io == [
        ("event", "track.published"),
        ("progress", "publication:ended"),
        ("event", "track.published"),
    ]


def test_a_rejection_records_its_event_beside_the_email(_no_webhook_io: list[tuple[str, Any]]):
    """The winner of a rejection sends the email and records track.rejected; a loser neither."""
    store = FakeStore(a_track(Status.HELD_FOR_REVIEW, CHECKS))
    with mock.patch.object(app, "send_task"):
        workflow.move(store, "t", Move.REVIEW_REJECT)
        workflow.move(store, "t", Move.REVIEW_REJECT)
    assert _no_webhook_io == [("event", "track.rejected")]


def test_each_stage_launch_offers_a_progress_event(_no_webhook_io: list[tuple[str, Any]]):
    """A stage that starts offers track.progress (sent only to endpoints that asked)."""
    store = FakeStore(a_track(Status.QUEUED))
    with mock.patch.object(app, "send_task"):
        workflow.launch_stage(store, store.track, CHECKS)
        workflow.launch_stage(store, store.track, CHECKS)
    assert _no_webhook_io == [("progress", "checks:started")]


def test_a_stage_that_passed_offers_its_end_as_the_next_starts(
    _no_webhook_io: list[tuple[str, Any]],
):
    """The checks' end is announced when the renditions start (their gate passed)."""
    store = FakeStore(a_track(Status.PROCESSING, CHECKS))
    with mock.patch.object(app, "send_task"):
        workflow.launch_stage(store, store.track, RENDITIONS)
    assert _no_webhook_io == [("progress", "checks:ended"), ("progress", "renditions:started")]
