"""The embedded AWS emulator: moto in server mode (S3, SQS, DynamoDB, SES) on the loopback.

moto enforces no S3 access control (presigned-policy limits, signatures, expiry), so it must never
listen beyond the loopback; the consumer checks size, ownership and content itself.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["EmulatorServer", "port_in_use", "sent_emails", "wait_until_serving"]


class EmulatorServer:
    """A moto server in this process; ``start()`` returns once it answers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator enforces no access control: loopback only")
        import logging

        import moto.backends
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        # moto lists its package directory on every request to route it; the list never
        # changes while we run, and listing it was a quarter of the emulator's time per request.
        modules = tuple(moto.backends.list_of_moto_modules())
        moto.backends.list_of_moto_modules = lambda: modules

        self.host, self.port = host, port
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._server.start()
        wait_until_serving(self.url)
        return self

    def stop(self) -> None:
        self._server.stop()


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
