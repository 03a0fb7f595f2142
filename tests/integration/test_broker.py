"""The Celery broker's transport: one SQS client per process serves every queue, built when a
worker process starts rather than by its first step; failed receives asked again after a growing
pause; a worker with no free slot waiting for one rather than polling."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from trackflow.settings import Lane, Settings, WorkerGroup
from trackflow.tasks import broker
from trackflow.tasks.app import app


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


class _Timer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Hub:
    """Records what the channel asks of the event loop, and runs none of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, tuple[object, ...]]] = []
        self.timers: list[_Timer] = []

    @property
    def pauses(self) -> list[float]:
        return [delay for delay, _, _ in self.calls]

    def call_later(self, delay: float, callback: object, *args: object) -> _Timer:
        self.calls.append((delay, getattr(callback, "__name__", ""), args))
        self.timers.append(_Timer())
        return self.timers[-1]


@contextmanager
def _channel_on_recording_hub(settings: Settings) -> Iterator[tuple[Any, _Hub, str]]:
    """A channel of the CPU queue's worker, whose scheduling is asked of a recording hub (the
    async SQS client still needs a real loop, which is never run)."""
    from kombu.asynchronous import Hub, set_event_loop

    loop = Hub()
    set_event_loop(loop)
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            channel.hub = hub = _Hub()
            yield channel, hub, settings.queue(WorkerGroup.CPU, Lane.STANDARD)
    finally:
        loop.close()
        set_event_loop(None)


class _Answer:
    def __init__(self, status: int, body: bytes = b"") -> None:
        self.status, self.body = status, body

    def read(self) -> bytes:
        return self.body


def test_failed_receives_are_read_as_empty_and_asked_again_after_a_growing_pause(
    settings: Settings,
):
    with _channel_on_recording_hub(settings) as (channel, hub, queue):
        sqs = channel.asynsqs(queue)
        answers = [_Answer(503), _Answer(400, b"<Code>ThrottlingException</Code>")] * 4
        for answer in answers:
            assert sqs._on_list_ready(None, [], "ReceiveMessage", answer) == {}
            channel._loop1(queue, 0)
        assert hub.pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
        sqs.failed_receives = 0  # a good answer resets the count
        channel._loop1(queue, 0)
        assert hub.pauses[-1] == app.conf.broker_transport_options["polling_interval"]


def test_a_worker_with_no_free_slot_waits_for_one_to_free_rather_than_polling(
    settings: Settings,
):
    with _channel_on_recording_hub(settings) as (channel, hub, queue):
        channel._active_queues.append(queue)
        channel.basic_qos(prefetch_count=1)
        channel.qos.append(SimpleNamespace(delivery_info={}), "busy")  # the one slot, taken
        channel._schedule_queue(queue)
        # no read, and no poll every polling_interval: a look a second later
        assert hub.calls == [(1.0, "_read_again", (queue,))]
        [look] = hub.timers
        channel._read_again(queue)  # the look: the slot is still taken, so another
        assert hub.calls[1:] == [(1.0, "_read_again", (queue,))]
        assert look.cancelled  # (it had fired) and no second chain of looks grows beside it
        hub.calls.clear()
        channel.basic_ack("busy")  # the step is done: its slot is free, and it reads at once
        assert not channel._waiting_for_slot
        assert all(timer.cancelled for timer in hub.timers)
        for _ in range(3):  # a late look, or a second ack's wake-up, finds nothing to do
            channel._read_again(queue)
        assert hub.calls == []
        assert not channel._waiting_for_slot
