"""App developers' commands: `webhooks add`, `list`, `remove`, `deliveries`, `redeliver`."""

from __future__ import annotations

import json

import click

from trackflow.cli.client import ApiClient
from trackflow.cli.console import done, out, table
from trackflow.cli.identity import with_client
from trackflow.domain.webhooks import DEFAULT_EVENTS, EVENT_TYPES

__all__ = ["webhooks"]


@click.group()
def webhooks() -> None:
    """Webhook endpoints: signed events about your tracks (Standard Webhooks)."""


@webhooks.command()
@click.argument("url")
@with_client()
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="an event to receive (repeat; default: every outcome and deletion, no progress)",
)
@click.option("--all-tracks", is_flag=True, help="administrators: events about every track")
def add(client: ApiClient, url: str, events: tuple[str, ...], all_tracks: bool) -> None:
    """Register URL; prints its signing secret, which is shown only now."""
    endpoint = client.request(
        "POST",
        "/v1/webhooks",
        json={"url": url, "events": list(events or DEFAULT_EVENTS), "all_tracks": all_tracks},
    )
    out.print_json(json.dumps(endpoint))
    done(f"endpoint {endpoint['id']} registered: keep its secret, it is not shown again")


@webhooks.command("list")
@with_client()
@click.option("--json", "as_json", is_flag=True)
def list_(client: ApiClient, as_json: bool) -> None:
    """Your endpoints."""
    found = client.request("GET", "/v1/webhooks")["webhooks"]
    if as_json:
        out.print_json(json.dumps(found))
        return
    rows = table("id", "url", "events", "enabled", "failing since")
    for e in found:
        enabled = "yes" if e["enabled"] else f"no: {e.get('disabled_reason') or ''}"
        rows.add_row(e["id"], e["url"], ", ".join(e["events"]), enabled, e["failing_since"] or "")
    out.print(rows)


@webhooks.command()
@click.argument("webhook_id")
@with_client()
def remove(client: ApiClient, webhook_id: str) -> None:
    """Remove an endpoint: nothing more is sent to it."""
    client.request("DELETE", f"/v1/webhooks/{webhook_id}")
    done(f"endpoint {webhook_id} removed")


@webhooks.command()
@click.argument("webhook_id")
@with_client()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def deliveries(client: ApiClient, webhook_id: str, limit: int, as_json: bool) -> None:
    """An endpoint's deliveries, newest first."""
    page = client.request("GET", f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": limit})
    if as_json:
        out.print_json(json.dumps(page))
        return
    rows = table("delivery", "type", "track", "state", "attempts", "last status", "next attempt")
    for d in page["deliveries"]:
        rows.add_row(
            d["id"],
            d["type"],
            d["track_id"],
            d["state"],
            str(d["attempts"]),
            str(d["last_status_code"] or d["last_error"] or ""),
            d["next_attempt_at"] or "",
        )
    out.print(rows)


@webhooks.command()
@click.argument("webhook_id")
@click.argument("delivery_id")
@with_client()
def redeliver(client: ApiClient, webhook_id: str, delivery_id: str) -> None:
    """Send a delivery's event again now (same webhook-id)."""
    client.request("POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
    done(f"delivery {delivery_id} scheduled again")
