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
reads from it, and building one loads the SQS service model: 0.08-0.2 s, measured, which the
step that launches the next stage spent before its first message left (a publication started
0.3 s late). All our queues share one region and one set of credentials, so one client serves
them all; ``warm_up`` builds it when a process starts, before any step runs.
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

    def asynsqs(self, queue: str | None = None) -> AsyncSQSConnection:
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
