"""Webhooks on the emulator: the routes, the store's conditional writes, and delivery attempts
against a receiver on the loopback (messages between tasks are captured, not sent)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from trackflow_devstack.receiver import WebhookReceiver

from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.domain.track import Status, initial_steps
from trackflow.settings import Settings
from trackflow.tasks import control, webhooks
from trackflow.tasks.runtime import track_store

pytestmark = pytest.mark.usefixtures("emulator")


@pytest.fixture(scope="module")
def api(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user)}"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver((200,)) as r:
        yield r


def test_register_list_get_rotate_and_delete(
    api: TestClient, settings: Settings, receiver: WebhookReceiver
):
    """The secret is shown on creation and rotation only; others' endpoints answer 404."""
    me = auth(settings, f"hooks-{uuid.uuid4().hex[:8]}")
    created = api.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["track.published"]}, headers=me
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["track.published"]
    listed = api.get("/v1/webhooks", headers=me).json()["webhooks"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    one = api.get(f"/v1/webhooks/{endpoint['id']}", headers=me).json()
    assert "secret" not in one and one["enabled"]
    assert (
        api.get(
            f"/v1/webhooks/{endpoint['id']}", headers=auth(settings, "someone-else")
        ).status_code
        == 404
    )
    rotated = api.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret", headers=me).json()
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_until"]
    stored = webhooks.webhook_store(settings).endpoint(endpoint["id"])
    assert [s["secret"] for s in stored["secrets"]] == [rotated["secret"], endpoint["secret"]]
    assert api.delete(f"/v1/webhooks/{endpoint['id']}", headers=me).status_code == 204
    assert api.get(f"/v1/webhooks/{endpoint['id']}", headers=me).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "http://127.0.0.1:9/x", "events": []}, 422, None),
        ({"url": "http://127.0.0.1:9/x", "events": ["track.nope"]}, 422, None),
        (
            {"url": "https://does-not-resolve.invalid/x", "events": ["track.failed"]},
            400,
            "unsafe_url",
        ),
        (
            {"url": "http://127.0.0.1:9/x", "events": ["track.failed"], "all_tracks": True},
            403,
            "forbidden",
        ),
    ],
)
def test_bad_registrations_are_refused(
    api: TestClient, settings: Settings, body: dict, status: int, code: str | None
):
    """Strict bodies, resolvable public hosts, and all-tracks endpoints for administrators only."""
    answer = api.post("/v1/webhooks", json=body, headers=auth(settings, "hooks-bad"))
    assert answer.status_code == status, answer.text
    if code:
        assert answer.json()["error"]["code"] == code


def test_private_addresses_are_refused_outside_local_mode(settings: Settings):
    """A deployment (loopback not allowed) refuses loopback and plain http at registration."""
    deployed = settings.model_copy(update={"webhook_allow_loopback": False})
    client = TestClient(create_app(deployed))
    for url in (
        "http://127.0.0.1:9/x",
        "https://127.0.0.1:9/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
    ):
        answer = client.post(
            "/v1/webhooks",
            json={"url": url, "events": ["track.failed"]},
            headers=auth(settings, "hooks-d"),
        )
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsafe_url", url


def test_an_administrator_may_hear_of_every_track(
    api: TestClient, settings: Settings, receiver: WebhookReceiver
):
    """An all-tracks endpoint is subscribed to any owner's events."""
    created = api.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": ["track.failed"], "all_tracks": True},
        headers=auth(settings, "admin"),
    )
    assert created.status_code == 201, created.text
    ids = [
        e["endpoint_id"]
        for e in webhooks.webhook_store(settings).subscribed("anyone-at-all", "track.failed")
    ]
    assert created.json()["id"] in ids
    api.delete(f"/v1/webhooks/{created.json()['id']}", headers=auth(settings, "admin"))


def a_track(owner: str) -> dict[str, Any]:
    return {
        "track_id": uuid.uuid4().hex,
        "owner": owner,
        "status": str(Status.PUBLISHED),
        "steps": initial_steps(),
        "created_at": "2026-01-01T00:00:00.000Z",
    }


def test_one_event_per_outcome_and_retries_with_the_same_id(api: TestClient, settings: Settings):
    """An outcome emitted twice makes one event and one delivery; 500, 500, 500 then 200 are
    four attempts with one webhook-id, each signed, and the log shows them."""
    receiver = WebhookReceiver((500, 500, 500, 200))
    owner = f"hooks-{uuid.uuid4().hex[:8]}"
    me = auth(settings, owner)
    endpoint = api.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["track.published"]}, headers=me
    ).json()
    track = a_track(owner)
    with (
        mock.patch.object(webhooks.dispatch, "apply_async") as dispatch,
        mock.patch.object(webhooks.deliver, "apply_async") as deliver,
    ):
        webhooks.emit(track, ["track.published"])
        webhooks.emit(track, ["track.published"])  # a redelivered message decides it again
        [(event_id,)] = {c.args[0] for c in dispatch.call_args_list}
        assert webhooks.dispatch(event_id) == 1
        assert webhooks.dispatch(event_id) == 1  # dispatch redelivered: the same delivery
        assert len({c.args[0] for c in deliver.call_args_list}) == 1
        args = deliver.call_args_list[0].args[0]
        results = []
        for _ in range(4):
            results.append(webhooks.deliver(*args))
            args = deliver.call_args_list[-1].args[0]
            store = webhooks.webhook_store(settings)
            due = store.delivery(args[0], args[1])
            if due["state"] == "pending":  # don't wait for the backoff
                store._delivery_update(due, _due_now())
        assert webhooks.deliver(*deliver.call_args_list[0].args[0]) == "over"  # a stale duplicate
    assert results == ["retrying", "retrying", "retrying", "delivered"]
    assert {d.headers["webhook-id"] for d in receiver.deliveries} == {event_id}
    assert len(receiver.deliveries) == 4
    page = api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=me).json()["deliveries"]
    assert [(d["event_id"], d["attempts"], d["last_status_code"], d["state"]) for d in page] == [
        (event_id, 4, 200, "delivered")
    ]
    receiver.close()


def _due_now() -> Any:
    import time

    from trackflow.adapters.state.dynamo import Update

    return Update().set("next_attempt_at", time.time())


def test_410_disables_the_endpoint_and_redeliver_needs_an_enabled_one(
    api: TestClient, settings: Settings
):
    """A 410 Gone ends the delivery and disables the endpoint; redelivery then answers 409."""
    receiver = WebhookReceiver((410,))
    owner = f"hooks-{uuid.uuid4().hex[:8]}"
    me = auth(settings, owner)
    endpoint = api.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["track.failed"]}, headers=me
    ).json()
    track = {**a_track(owner), "status": str(Status.FAILED)}
    with (
        mock.patch.object(webhooks.dispatch, "apply_async") as dispatch,
        mock.patch.object(webhooks.deliver, "apply_async") as deliver,
    ):
        webhooks.emit(track, ["track.failed"])
        webhooks.dispatch(dispatch.call_args.args[0][0])
        assert webhooks.deliver(*deliver.call_args.args[0]) == "gone"
    shown = api.get(f"/v1/webhooks/{endpoint['id']}", headers=me).json()
    assert not shown["enabled"] and "410" in shown["disabled_reason"]
    [delivery] = api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=me).json()[
        "deliveries"
    ]
    again = api.post(
        f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", headers=me
    )
    assert again.status_code == 409
    receiver.close()


def test_redeliver_schedules_the_same_event_again(
    api: TestClient, settings: Settings, receiver: WebhookReceiver
):
    """A delivered event redelivered is sent again with the same webhook-id."""
    owner = f"hooks-{uuid.uuid4().hex[:8]}"
    me = auth(settings, owner)
    endpoint = api.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["track.published"]}, headers=me
    ).json()
    with (
        mock.patch.object(webhooks.dispatch, "apply_async") as dispatch,
        mock.patch.object(webhooks.deliver, "apply_async") as deliver,
    ):
        webhooks.emit(a_track(owner), ["track.published"])
        webhooks.dispatch(dispatch.call_args.args[0][0])
        assert webhooks.deliver(*deliver.call_args.args[0]) == "delivered"
        [delivery] = api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=me).json()[
            "deliveries"
        ]
        again = api.post(
            f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", headers=me
        )
        assert again.status_code == 202 and again.json()["state"] == "pending"
        assert webhooks.deliver(*deliver.call_args.args[0]) == "delivered"
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == [delivery["event_id"]] * 2


def test_nobody_listening_writes_no_event(settings: Settings):
    """A track whose owner has no endpoint makes no event and sends no message."""
    with mock.patch.object(webhooks.dispatch, "apply_async") as dispatch:
        webhooks.emit(a_track("nobody-listens"), ["track.published"])
    assert not dispatch.called


def test_deleting_a_track_tells_its_owner_s_endpoints(api: TestClient, settings: Settings):
    """DELETE of a finished track records one track.deleted event for its owner's endpoint."""
    receiver = WebhookReceiver((200,))
    owner = f"hooks-{uuid.uuid4().hex[:8]}"
    me = auth(settings, owner)
    api.post("/v1/webhooks", json={"url": receiver.url, "events": ["track.deleted"]}, headers=me)
    track = a_track(owner)
    track_store(settings).create(track)
    with (
        mock.patch.object(webhooks.dispatch, "apply_async") as dispatch,
        mock.patch.object(control.delete_track_files, "delay"),
    ):
        assert api.delete(f"/v1/tracks/{track['track_id']}", headers=me).status_code == 202
    [(event_id,)] = {c.args[0] for c in dispatch.call_args_list}
    event = webhooks.webhook_store(settings).event(event_id)
    assert event is not None and event["type"] == "track.deleted"
    receiver.close()
