"""The events consumer: a kombu consumer on the events queue that admits each upload.

A message is acknowledged only once its uploads are admitted (workflow launched, duplicate
recognised or upload refused with a visible reason). A message that can never be processed is
made visible again at once, so that the queue's redrive policy moves it to the dead-letter
queue after a few receives; a transient failure leaves the message to come back after its
visibility timeout. Either way kombu forgets the message without deleting it (the queue has a
redrive policy), so unfinished messages never hold up the prefetch window. Nothing stops the
loop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from kombu import Connection, Consumer, Queue
from kombu.mixins import ConsumerMixin

from trackflow.adapters import aws
from trackflow.adapters.state.tracks import TrackStore
from trackflow.consumer.admission import admit
from trackflow.consumer.events import PoisonMessage, parse_message
from trackflow.logs import bind, get_logger, unbind
from trackflow.settings import Settings
from trackflow.tasks.app import celery_config, predefined_queue
from trackflow.tasks.recovery import sweep
from trackflow.tasks.tuning import freeze_long_lived

__all__ = ["EventConsumer", "run_consumer"]

log = get_logger(__name__)


def _connection(settings: Settings) -> Connection:
    config = celery_config(settings)
    options = dict(config["broker_transport_options"])
    options["predefined_queues"] = {
        settings.events_queue: predefined_queue(settings, settings.events_queue)
    }
    return Connection(
        config["broker_url"], transport=config["broker_transport"], transport_options=options
    )


class EventConsumer(ConsumerMixin):
    def __init__(self, connection: Connection, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.store = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
        self.sqs = aws.client("sqs", settings)
        self.handled = 0

    def get_consumers(
        self, consumer_class: Callable[..., Consumer], channel: Any
    ) -> list[Consumer]:
        # kombu passes Consumer with the channel already bound (functools.partial)
        queue = Queue(self.settings.events_queue, no_declare=True)
        return [consumer_class(queues=[queue], on_message=self.on_message, prefetch_count=10)]

    def on_message(self, message: Any) -> None:
        body = message.body
        try:
            events = parse_message(body)
            for event in events:
                bind(key=event.key)
                admission = admit(event, self.settings, self.store)
                log.info(
                    "upload_admitted",
                    track_id=admission.track_id,
                    outcome=str(admission.outcome),
                    reason=admission.reason or None,
                )
        except PoisonMessage as poison:
            log.error("poison_message", reason=str(poison), body=_preview(body))
            self._show_again_now(message)
            message.reject(requeue=False)
            return
        except Exception:  # DynamoDB or SQS trouble: the message comes back after its timeout
            log.exception("event_not_admitted", body=_preview(body))
            message.reject(requeue=False)
            return
        finally:
            unbind("key")
            self.handled += 1
        message.ack()

    def _show_again_now(self, message: Any) -> None:
        """Make the message visible again at once: each receive counts toward the redrive
        policy's limit, and then SQS moves it to the dead-letter queue. (kombu's requeue would
        send a copy, whose receive count starts again from zero.)"""
        info = message.delivery_info
        try:
            self.sqs.change_message_visibility(
                QueueUrl=info["sqs_queue"],
                ReceiptHandle=info["sqs_message"]["ReceiptHandle"],
                VisibilityTimeout=0,
            )
        except Exception:  # then it comes back after its visibility timeout instead
            log.exception("poison_not_released")


def _preview(body: Any, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text[:limit]


def _sweep_periodically(settings: Settings, stopping: threading.Event) -> None:
    """The sweeper runs beside the consumer: every consumer sweeps, and conditional writes make
    sure each stalled track is taken by one of them."""
    while not stopping.wait(settings.sweep_interval_s):
        try:
            sweep(settings)
        except Exception:  # never let a failed sweep stop the next one
            log.exception("sweep_failed")


def run_consumer(settings: Settings) -> None:
    """Consume until SIGTERM or SIGINT."""
    stopping = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_periodically, args=(settings, stopping), name="sweeper", daemon=True
    )
    with _connection(settings) as connection:
        consumer = EventConsumer(connection, settings)

        def stop(*_: Any) -> None:
            consumer.should_stop = True
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        sweeper.start()
        freeze_long_lived()
        log.info("consumer_started", queue=settings.events_queue)
        consumer.run()
        log.info("consumer_stopped", handled=consumer.handled)
