"""A webhook receiver on the loopback, for the local stack's tests and benchmarks: it records
what each delivery carried and when it arrived, and answers with the statuses it is given."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # names in lower case
    body: bytes
    arrived_at: float  # time.time()


class WebhookReceiver:
    """Listens on 127.0.0.1 from construction until :meth:`close` (or the ``with`` block's end).
    Answers each delivery with the next of ``statuses``, the last one from then on."""

    def __init__(self, statuses: tuple[int, ...] = (204,)) -> None:
        self.statuses = list(statuses)
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.deliveries.append(Delivery(headers, body, time.time()))
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass  # the deliveries are the record

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
