"""The Celery application: SQS as the broker, and no result backend (outcomes live in the track).

Every setting that matters on SQS is here and says why: late acknowledgement (a task's message
stays in the queue until the task is done, so a crash loses nothing), one message in hand per
process, predefined queues (no ListQueues/CreateQueue, and exactly the queues Terraform makes),
no remote control or events (SQS has no fanout for them).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlparse

import structlog
from celery import Celery
from celery.signals import setup_logging, task_prerun, worker_process_init, worker_ready
from kombu import Queue

from trackflow.adapters.aws import EMULATOR_CREDENTIALS, account_id, client, user_agent
from trackflow.logs import configure_logging
from trackflow.settings import AwsTarget, Lane, Settings, WorkerGroup, get_settings
from trackflow.tasks.broker import warm_up
from trackflow.tasks.tuning import freeze_long_lived

__all__ = ["app", "celery_config", "predefined_queue", "routed"]

_QUEUE_BY_TASK: dict[str, str] = {}


def routed(name: str, group: WorkerGroup, lane: Lane = Lane.STANDARD) -> str:
    """Name a task and give it its queue: the one a message for it goes to unless the sender
    names another (a track's lane). Routed by ``task_routes``, as the tasks' own ``queue``
    attribute goes in Celery 6."""
    _QUEUE_BY_TASK[name] = get_settings().queue(group, lane)
    return name


def _route(name: str, *_: Any, **__: Any) -> dict[str, str] | None:
    queue = _QUEUE_BY_TASK.get(name)
    return {"queue": queue} if queue else None


def _credentials(settings: Settings) -> tuple[str, str] | None:
    if settings.aws_target is AwsTarget.AWS:
        return None  # the default credential chain (task role, profile, ...)
    return (
        os.environ.get("AWS_ACCESS_KEY_ID", EMULATOR_CREDENTIALS["aws_access_key_id"]),
        os.environ.get("AWS_SECRET_ACCESS_KEY", EMULATOR_CREDENTIALS["aws_secret_access_key"]),
    )


def _queue_url(settings: Settings, name: str) -> str:
    """Queue URLs without a lookup: the emulators and AWS both follow this pattern."""
    if settings.endpoint_url:
        return f"{settings.endpoint_url.rstrip('/')}/{account_id(settings)}/{name}"
    return f"https://sqs.{settings.region}.amazonaws.com/{account_id(settings)}/{name}"


def predefined_queue(settings: Settings, name: str) -> dict[str, str]:
    """kombu's description of a queue that already exists (no ListQueues or CreateQueue)."""
    queue = {"url": _queue_url(settings, name)}
    credentials = _credentials(settings)
    if credentials:
        queue |= {"access_key_id": credentials[0], "secret_access_key": credentials[1]}
    return queue


def celery_config(settings: Settings) -> dict[str, Any]:
    credentials = _credentials(settings)
    endpoint = urlparse(settings.endpoint_url) if settings.endpoint_url else None
    if endpoint:
        user = ":".join(quote(part, safe="") for part in credentials or ("", ""))
        broker_url = f"sqs://{user}@{endpoint.hostname}:{endpoint.port or 80}"
    else:
        broker_url = "sqs://"
    predefined = {name: predefined_queue(settings, name) for name in settings.worker_queues}
    return {
        "broker_url": broker_url,
        "broker_transport": "trackflow.tasks.broker:Transport",
        "broker_transport_options": {
            "region": settings.region,
            "is_secure": endpoint is None or endpoint.scheme == "https",
            "predefined_queues": predefined,
            "wait_time_seconds": settings.broker_wait_time_s,
            # The pause after a long poll that came back empty (after wait_time_seconds). A
            # worker with no free slot is not polled: the ack that frees one reads again
            # (broker.py).
            "polling_interval": 0.01,
            "client-config": {"user_agent": user_agent()},  # kombu's own SQS client, for sends
        },
        "broker_connection_retry_on_startup": True,
        # A step's outcome lives in its track's record, and stages join there too (see
        # workflow.py): Celery keeps no results, so it needs no result backend.
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_routes": (_route,),
        "task_default_queue": settings.queue(WorkerGroup.IO, Lane.STANDARD),
        "task_queues": [Queue(name, no_declare=True) for name in settings.worker_queues],
        "task_create_missing_queues": False,
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        # On SIGTERM (scale-in) finish quickly, then hand unfinished messages back at once.
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


app = Celery(
    "trackflow",
    include=[
        "trackflow.tasks.steps",
        "trackflow.tasks.catalogue",
        "trackflow.tasks.feeds",
        "trackflow.tasks.control",
        "trackflow.tasks.webhooks",
    ],
)
app.config_from_object(celery_config(get_settings()))


@setup_logging.connect
def _logging(**_: Any) -> None:
    configure_logging("worker")


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """Forked pool processes start with fresh AWS clients (they are cached per pid), built now
    rather than in the process's first step, which would wait while each loads its service
    model."""
    configure_logging("worker")
    settings = get_settings()
    for service in ("s3", "dynamodb"):
        client(service, settings)
    warm_up(app, settings.worker_queues)
    freeze_long_lived()


@worker_ready.connect
def _worker_set_up(**_: Any) -> None:
    """The worker's main process, once its pool runs, keeps what it has set up to the end."""
    freeze_long_lived()


@task_prerun.connect
def _fresh_log_context(task: Any = None, **_: Any) -> None:
    """Each task logs with its own context: nothing bound by the previous task leaks in."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(component="worker", task=getattr(task, "name", None))
