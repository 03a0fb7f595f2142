"""kombu's SQS transport, made to live through the errors SQS does return now and then.

kombu 5.7 reads a ReceiveMessage answered with a 5xx as ``[]`` and then calls ``.get`` on it,
and raises on a throttled one; either way the exception reaches the worker's event loop and
the worker dies ("Unrecoverable error"), found here by the chaos suite's fault-injecting proxy.
This transport reads both as "no messages this time": the next long poll asks again. Any other
error still raises, so a misconfigured queue or missing permission stays loud.
"""

from __future__ import annotations

from typing import Any

from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection
from kombu.transport import SQS

from trackflow.logs import get_logger

__all__ = ["Transport"]

log = get_logger(__name__)

_THROTTLED = (b"Throttl", b"RequestThrottled", b"OverLimit", b"SlowDown")


class _TolerantAsyncSQSConnection(AsyncSQSConnection):
    def _on_list_ready(self, parent: Any, markers: Any, operation: str, response: Any) -> Any:
        if response.status != self.STATUS_CODE_OK and operation == "ReceiveMessage":
            body = response.read() or b""
            if response.status >= 500 or any(marker in body for marker in _THROTTLED):
                log.warning("sqs_receive_failed", status=response.status, body=body[:200])
                return {}
        return super()._on_list_ready(parent, markers, operation, response)


class Channel(SQS.Channel):
    def asynsqs(self, queue: str | None = None) -> AsyncSQSConnection:
        connection = super().asynsqs(queue)
        # kombu builds and caches the connection itself; this one only reads answers better
        connection.__class__ = _TolerantAsyncSQSConnection
        return connection


class Transport(SQS.Transport):
    Channel = Channel
