"""kombu's SQS transport, made to live through the errors SQS does return now and then, and to
build one SQS client per process rather than one per queue.

kombu 5.7 reads a ReceiveMessage answered with a 5xx as ``[]`` and then calls ``.get`` on it,
and raises on a throttled one; either way the exception reaches the worker's event loop and
the worker dies ("Unrecoverable error"), found here by the chaos suite's fault-injecting proxy.
This transport reads both as "no messages this time": the next long poll asks again, after a
pause that doubles with each failed receive in a row (up to 5 s), so that a struggling SQS is
not asked a hundred times a second. Any other error still raises, so a misconfigured queue or
missing permission stays loud.

kombu builds a boto3 client for each predefined queue the first time a process sends to it or
reads from it, and building one loads the SQS service model, which the step that launches the
next stage spent before its first message left. All our queues share one region and one set
of credentials, so one client serves them all; ``warm_up`` builds it when a process starts,
before any step runs.

While every slot of a worker is busy, kombu asks again whether one is free every
``polling_interval``: a busy CPU worker's main process woke a hundred times a second for
nothing. Here a queue with no free slot waits for
the ack, reject or prefetch change that frees one, and is read again at once.
"""

from __future__ import annotations

import os
from typing import Any

from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection
from kombu.transport import SQS

from trackflow.logs import get_logger

__all__ = ["Transport", "warm_up"]

log = get_logger(__name__)

_THROTTLED = (b"Throttl", b"RequestThrottled", b"OverLimit", b"SlowDown")
_MAX_RECEIVE_BACKOFF_S = 5.0
# A queue waiting for a free slot is looked at this often anyway: should a slot ever free by a
# path that does not call back here, the worker reads again a second later rather than never.
_FULL_RECHECK_S = 1.0


class _TolerantAsyncSQSConnection(AsyncSQSConnection):
    failed_receives = 0  # receives in a row that SQS answered with a 5xx or a throttle

    def _on_list_ready(self, parent: Any, markers: Any, operation: str, response: Any) -> Any:
        if operation == "ReceiveMessage":
            if response.status != self.STATUS_CODE_OK:
                body = response.read() or b""
                if response.status >= 500 or any(marker in body for marker in _THROTTLED):
                    self.failed_receives += 1
                    log.warning("sqs_receive_failed", status=response.status, body=body[:200])
                    return {}
            else:
                self.failed_receives = 0
        return super()._on_list_ready(parent, markers, operation, response)


_clients: dict[tuple[Any, ...], tuple[tuple[str | None, ...], Any]] = {}


class Channel(SQS.Channel):
    hub: Any  # kombu's event loop, set before any queue is read

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._waiting_for_slot: dict[str, Any] = {}  # queue: its once-a-second look
        super().__init__(*args, **kwargs)  # (which may set the prefetch: _slot_freed reads it)

    def new_sqs_client(
        self,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None = None,
    ) -> Any:
        # by process too: a client's connection pool must not cross a fork; new credentials
        # (an assumed role's, renewed) replace the client rather than pile up beside it
        where = (os.getpid(), self.endpoint_url, region)
        credentials = (access_key_id, secret_access_key, session_token)
        if where not in _clients or _clients[where][0] != credentials:
            client = super().new_sqs_client(region, *credentials)
            _clients[where] = (credentials, client)
        return _clients[where][1]

    def _loop1(self, queue: str, messages_fetched: Any = None) -> None:
        failed = self.asynsqs(self.canonical_queue_name(queue)).failed_receives
        if failed:
            pause = min(_MAX_RECEIVE_BACKOFF_S, 0.1 * 2**failed)
            self.hub.call_later(pause, self._schedule_queue, queue)
            return
        super()._loop1(queue, messages_fetched)

    def _schedule_queue(self, queue: str) -> None:
        if queue in self._active_queues and not self.qos.can_consume():
            self._wait_for_slot(queue)
            return
        super()._schedule_queue(queue)

    def _wait_for_slot(self, queue: str) -> None:
        self._waiting_for_slot[queue] = self.hub.call_later(
            _FULL_RECHECK_S, self._read_again, queue
        )

    def _read_again(self, queue: str) -> None:
        # a queue has one chain of reads: only the first of its wake-ups restarts it
        look = self._waiting_for_slot.pop(queue, None)
        if look is None:
            return
        look.cancel()
        try:
            self._schedule_queue(queue)
        except Exception:  # the read did not start: try again later, never stop reading
            log.exception("sqs_read_not_started", queue=queue)
            self._wait_for_slot(queue)

    def _slot_freed(self) -> None:
        # Read at once, not through the hub's call_soon: Celery acks from the hub's ready
        # callbacks, and one added there waits for the next poll to return, up to a second.
        if self._waiting_for_slot and self.qos.can_consume():
            for queue in list(self._waiting_for_slot):
                self._read_again(queue)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        try:
            super().basic_ack(delivery_tag, multiple)
        finally:
            self._slot_freed()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().basic_reject(delivery_tag, requeue)
        finally:
            self._slot_freed()

    def basic_qos(self, *args: Any, **kwargs: Any) -> None:
        super().basic_qos(*args, **kwargs)
        self._slot_freed()

    def basic_recover(self, requeue: bool = False) -> Any:
        try:
            return super().basic_recover(requeue)
        finally:
            self._slot_freed()

    def asynsqs(self, queue: str | None = None) -> _TolerantAsyncSQSConnection:
        connection = super().asynsqs(queue)
        # kombu builds and caches the connection itself; this one only reads answers better
        connection.__class__ = _TolerantAsyncSQSConnection
        return connection


class Transport(SQS.Transport):
    Channel = Channel


def warm_up(app: Any, queues: list[str]) -> None:
    """Build this process's SQS client for ``queues`` now (no request is sent), so that the
    first message a step sends leaves at once."""
    with app.producer_or_acquire() as producer:
        for queue in queues:
            producer.channel.sqs(queue)
