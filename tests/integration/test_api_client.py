"""The API client resends a read whose connection broke under it, and never a write."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest

from trackflow.cli.client import ApiClient


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[bytes]]]:
    """Resets the first connection as soon as a request arrives on it (as a server closing a
    kept-alive connection does to a request already on its way); answers the later ones."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536)
                requests.append(request.split(b"\r\n", 1)[0])
                if len(requests) == 1:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue  # closed with a reset, nothing answered
                body = b'{"status": "published"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    listener.close()


def test_a_read_is_resent_when_its_connection_is_reset(flaky_server):
    url, requests = flaky_server
    with ApiClient(url, "token") as client:
        assert client.track("t1")["status"] == "published"
    assert requests == [b"GET /v1/tracks/t1 HTTP/1.1"] * 2


def test_a_write_is_not_resent(flaky_server):
    url, requests = flaky_server
    with ApiClient(url, "token") as client, pytest.raises(httpx.TransportError):
        client.request("POST", "/v1/uploads", json={})
    assert requests == [b"POST /v1/uploads HTTP/1.1"]
