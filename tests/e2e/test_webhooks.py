"""Webhooks on the whole stack: an upload's publication reaches a receiver on the loopback as
exactly one signed track.published event, and the decision taken again makes no second one."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import client_for, upload_and_wait, wait_for
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings
from trackflow.tasks import webhooks

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

standardwebhooks = pytest.importorskip("standardwebhooks")


def test_a_published_track_reaches_the_receiver_once_signed(settings: Settings, tmp_path: Path):
    """One track.published event, verified by the standardwebhooks package; emitting the
    outcome again (a redelivered message) creates no second event."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = client_for(settings, "e2e-hooks")
        endpoint = client.request(
            "POST",
            "/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{server.server_address[1]}/in",
                "events": ["track.published", "track.failed"],
            },
        )
        path = write_track(
            SampleTrack("Hook Song", "Tester", seconds=6, seed=5151), tmp_path / "h.mp3"
        )
        track = upload_and_wait(client, path)
        assert track["status"] == "published", track.get("error")
        wait_for(lambda: received, timeout_s=60)
        [(headers, body)] = received
        event = standardwebhooks.Webhook(endpoint["secret"]).verify(body, headers)
        assert event["type"] == "track.published"
        assert event["data"]["track_id"] == track["track_id"]
        # the outcome decided again, as a redelivered last step would: no second event
        webhooks.emit(track, ["track.published"])
        time.sleep(3)
        assert len(received) == 1
        page = client.request("GET", f"/v1/webhooks/{endpoint['id']}/deliveries")
        [delivery] = page["deliveries"]
        assert delivery["event_id"] == headers["webhook-id"]
        assert (delivery["attempts"], delivery["last_status_code"]) == (1, 204)
    finally:
        server.shutdown()
