"""Webhooks on the whole stack: an upload's publication reaches a receiver on the loopback as
exactly one signed track.published event, and the decision taken again makes no second one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from trackflow_devstack.receiver import WebhookReceiver

from tests.support.stack import client_for, upload_and_wait, wait_for
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings
from trackflow.tasks import webhooks

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]

standardwebhooks = pytest.importorskip("standardwebhooks")


def test_a_published_track_reaches_the_receiver_once_signed(settings: Settings, tmp_path: Path):
    """One track.published event, verified by the standardwebhooks package; emitting the
    outcome again (a redelivered message) creates no second event."""
    receiver = WebhookReceiver()
    try:
        client = client_for(settings, "e2e-hooks")
        endpoint = client.request(
            "POST",
            "/v1/webhooks",
            json={
                "url": receiver.url,
                "events": ["track.published", "track.failed"],
            },
        )
        path = write_track(
            SampleTrack("Hook Song", "Tester", seconds=6, seed=5151), tmp_path / "h.mp3"
        )
        track = upload_and_wait(client, path)
        assert track["status"] == "published", track.get("error")
        wait_for(lambda: receiver.deliveries, timeout_s=60)
        [delivery] = receiver.deliveries
        headers = delivery.headers
        event = standardwebhooks.Webhook(endpoint["secret"]).verify(delivery.body, headers)
        assert event["type"] == "track.published"
        assert event["data"]["track_id"] == track["track_id"]
        # the outcome decided again, as a redelivered last step would: no second event
        webhooks.emit(track, ["track.published"])
        time.sleep(3)
        assert len(receiver.deliveries) == 1
        page = client.request("GET", f"/v1/webhooks/{endpoint['id']}/deliveries")
        [logged] = page["deliveries"]
        assert logged["event_id"] == headers["webhook-id"]
        assert (logged["attempts"], logged["last_status_code"]) == (1, 204)
    finally:
        receiver.close()
