"""Where each task's messages go: by ``task_routes`` (Celery 6 drops the tasks' own ``queue``)."""

from __future__ import annotations

from trackflow.domain.track import STEPS
from trackflow.settings import Lane, WorkerGroup, get_settings
from trackflow.tasks.app import app

app.loader.import_default_modules()
TASKS = sorted(name for name in app.tasks if name.startswith("trackflow."))


def _queue(name: str, **options: str) -> str:
    return app.amqp.router.route(options, name)["queue"].name


def test_every_task_has_a_worker_queue_and_no_queue_attribute():
    settings = get_settings()

    assert len(TASKS) > len(STEPS)
    for name in TASKS:
        assert _queue(name) in settings.worker_queues, name
        assert "queue" not in type(app.tasks[name]).__dict__, name


def test_steps_go_to_their_group_and_catalogue_work_to_the_bulk_lane():
    settings = get_settings()

    for spec in STEPS:
        assert _queue(f"trackflow.{spec.name}") == settings.queue(spec.group, Lane.STANDARD)
    assert _queue("trackflow.fingerprint_work") == settings.queue(WorkerGroup.CPU, Lane.BULK)
    assert _queue("trackflow.index_work_chunk") == settings.queue(WorkerGroup.IO, Lane.BULK)


def test_a_queue_named_by_the_sender_wins():
    priority = get_settings().queue(WorkerGroup.CPU, Lane.PRIORITY)

    assert _queue("trackflow.check_copyright", queue=priority) == priority
