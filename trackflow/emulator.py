"""The embedded AWS emulator: moto in server mode (S3, SQS, DynamoDB, SES) on the loopback.

moto enforces no S3 access control (presigned-policy limits, signatures, expiry), so it must never
listen beyond the loopback; the consumer checks size, ownership and content itself.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["EmulatorServer", "port_in_use", "sent_emails", "wait_until_serving"]


class _AtomicDynamoDB:
    """WSGI middleware: one DynamoDB request at a time.

    moto changes DynamoDB items in place, without locks, so concurrent requests on one item can
    read it half written (seen here as Celery's chord counter losing its count); DynamoDB itself
    applies every request atomically. Serialising DynamoDB requests restores that; they are
    quick, and SQS long polls are left to run side by side.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self._app(environ, start_response)
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()


class EmulatorServer:
    """A moto server in this process; ``start()`` returns once it answers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator enforces no access control: loopback only")
        import moto.backends

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        # moto lists its package directory on every request to route it; the list never
        # changes while we run, and listing it was a quarter of the emulator's time per request.
        modules = tuple(moto.backends.list_of_moto_modules())
        moto.backends.list_of_moto_modules = lambda: modules
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="emulator"
        )
        self._thread.start()
        wait_until_serving(self.url)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
        if self._thread:
            self._thread.join()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_until_serving(url: str, timeout_s: float = 30) -> None:
    """Poll the emulator's health endpoint until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no emulator answered at {url}") from None
            time.sleep(0.1)


def sent_emails(url: str, attempts: int = 5) -> list[dict[str, Any]]:
    """Messages the emulator's SES accepted (moto keeps them instead of delivering them).

    moto builds this dump by walking live state, which can change under it (it answers 500):
    ask again.
    """
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=10) as response:
                return list(json.load(response).get("ses", {}).get("Message", []))
        except urllib.error.HTTPError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    return []
