"""The Celery broker's transport: one SQS client per process serves every queue, built when a
worker process starts rather than by its first step."""

from __future__ import annotations

import os

from trackflow.tasks import broker
from trackflow.tasks.app import app

from trackflow.settings import Settings


def test_one_sqs_client_serves_every_queue_and_warm_up_builds_it(settings: Settings):
    broker.warm_up(app, settings.worker_queues)
    built = {key: client for key, client in broker._clients.items() if key[0] == os.getpid()}
    assert len(built) == 1
    with app.producer_or_acquire() as producer:
        clients = {id(producer.channel.sqs(queue)) for queue in settings.worker_queues}
    assert clients == {id(client) for client in built.values()}
