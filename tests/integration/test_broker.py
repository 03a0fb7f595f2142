"""The Celery broker's transport: one SQS client per process serves every queue, built when a
worker process starts rather than by its first step."""

from __future__ import annotations

import os

from trackflow.tasks import broker
from trackflow.tasks.app import app

from trackflow.settings import Settings


def test_one_sqs_client_serves_every_queue_and_warm_up_builds_it(settings: Settings):
    broker.warm_up(app, settings.worker_queues)
    mine = {where: entry for where, entry in broker._clients.items() if where[0] == os.getpid()}
    assert len(mine) == 1
    [(credentials, built)] = mine.values()
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        assert {id(channel.sqs(queue)) for queue in settings.worker_queues} == {id(built)}
        # renewed credentials (an assumed role's) replace the client rather than pile up
        renewed = channel.new_sqs_client(settings.region, "renewed-key", "renewed-secret", "t")
        assert renewed is not built
        assert channel.new_sqs_client(settings.region, "renewed-key", "renewed-secret", "t") is (
            renewed
        )
        assert sum(where[0] == os.getpid() for where in broker._clients) == 1
        channel.new_sqs_client(settings.region, *credentials)
