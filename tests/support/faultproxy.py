"""A fault-injecting HTTP proxy between trackflow and the AWS emulator, for the chaos tests.

Every request is forwarded to the upstream endpoint unchanged, unless a fault is drawn for it:
a dropped connection, a delay, or an answer of 500, 503 or throttling. Faults are off until a
test turns them on (POST /__faults__ with the probabilities, and optionally ``match``: only
requests whose path and query contain it draw faults, and ``after``: that many matching
requests pass first); GET /__faults__ reports what was injected. Run as a process:
python -m tests.support.faultproxy PORT UPSTREAM_URL
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

# How each kind of AWS API says "slow down": (status, content type, body)
THROTTLING = {
    # DynamoDB and SQS's JSON protocol (requests carry X-Amz-Target)
    "json": (
        400,
        "application/x-amz-json-1.0",
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
        b'"message":"Rate of requests exceeds the allowed throughput."}',
    ),
    # the query protocol (SES, SQS's older form): form-encoded requests
    "query": (
        400,
        "text/xml",
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>Rate exceeded</Message></Error></ErrorResponse>",
    ),
    # S3, uploads included, throttles with 503 SlowDown
    "s3": (
        503,
        "application/xml",
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    ),
}


def _protocol(request: web.Request) -> str:
    if "X-Amz-Target" in request.headers:
        return "json"
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "s3"


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: dict[str, float] = {}
        self.match = ""  # only requests whose path and query contain this draw faults
        self.spared = 0  # matching requests still to pass before faults are drawn
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.session: ClientSession | None = None
        self.random = random.Random(1234)

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            asked = await request.json()
            self.match, self.spared = str(asked.pop("match", "")), int(asked.pop("after", 0))
            self.faults = {k: float(v) for k, v in asked.items()}
            self.random.seed(1234)
        return web.json_response(
            {"faults": self.faults, "injected": dict(self.injected), "forwarded": self.forwarded}
        )

    def _draw(self, request: web.Request) -> str | None:
        if self.match not in request.path_qs:
            return None
        if self.spared > 0:
            self.spared -= 1
            return None
        roll = self.random.random()
        for fault, probability in self.faults.items():
            if roll < probability:
                return fault
            roll -= probability
        return None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._draw(request)
        if fault:
            self.injected[fault] += 1
        if fault == "drop":
            request.transport.close()  # the client sees the connection reset
            raise ConnectionResetError("injected")
        if fault == "delay":
            await asyncio.sleep(self.random.uniform(0.2, 1.5))
        if fault in ("500", "503"):
            return web.Response(status=int(fault), text="injected fault")
        if fault == "throttle":
            status, content_type, payload = THROTTLING[_protocol(request)]
            return web.Response(status=status, body=payload, content_type=content_type)
        assert self.session is not None
        hop_by_hop = {
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "expect",
            "keep-alive",
        }
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop_by_hop}
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            self.forwarded += 1
            head = request.method == "HEAD"
            response = web.Response(status=upstream.status, body=None if head else payload)
            skip = {"transfer-encoding", "connection", "content-encoding"}
            if not head:  # aiohttp counts the body; a HEAD answer keeps the object's length
                skip.add("content-length")
            for name, value in upstream.headers.items():
                if name.lower() not in skip:
                    response.headers[name] = value
            return response


def main(port: int, upstream: str) -> None:
    proxy = FaultProxy(upstream)
    app = web.Application(client_max_size=1024**3)

    async def start(_: Any) -> None:
        # A connection per request: the emulator's server may close any connection it answered,
        # and a reused dead one would look like a fault we did not inject.
        proxy.session = ClientSession(
            timeout=ClientTimeout(total=120),
            auto_decompress=False,
            connector=TCPConnector(force_close=True, limit=0),
        )

    async def stop(_: Any) -> None:
        if proxy.session:
            await proxy.session.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/__faults__", proxy.control)
    app.router.add_route("*", "/{tail:.*}", proxy.forward)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
