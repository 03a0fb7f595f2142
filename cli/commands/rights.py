"""Administrators' commands for rights holders and reviewers: `catalogue`, `review`, `account`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from trackflow.cli.client import ApiClient, guess_content_type
from trackflow.cli.console import done, out, table
from trackflow.cli.identity import with_client

__all__ = ["account", "catalogue", "review"]

# a work in these states is (or is on its way to being) in the catalogue
_WORK_ACCEPTED = ("active", "indexing", "awaiting_upload")


@click.group()
def catalogue() -> None:
    """The catalogue of reference works that uploads are checked against."""


@catalogue.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True)
@click.option("--owner", required=True, help="the rights holder")
@with_client(admin=True)
@click.option("--wait/--no-wait", default=True, help="wait until the work is indexed")
@click.option("--timeout", default=600.0, show_default=True)
def catalogue_add(
    client: ApiClient, file: Path, title: str, owner: str, wait: bool, timeout: float
) -> None:
    """Register FILE as a reference work owned by OWNER."""
    created = client.request(
        "POST",
        "/v1/catalogue/works",
        json={
            "title": title,
            "owner": owner,
            "filename": file.name,
            "content_type": guess_content_type(file),
            "size": file.stat().st_size,
        },
    )
    client.send_file(created["upload"], file)
    work = created["work"]
    deadline = time.monotonic() + timeout
    while wait and work["status"] not in ("active", "failed"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        work = client.request("GET", f"/v1/catalogue/works/{work['work_id']}")
    out.print_json(json.dumps(work))
    sys.exit(0 if work["status"] in _WORK_ACCEPTED else 1)


@catalogue.command("list")
@click.option("--owner", help="only this rights holder's works")
@with_client(admin=True)
@click.option("--json", "as_json", is_flag=True)
def catalogue_list(client: ApiClient, owner: str | None, as_json: bool) -> None:
    """List the works in the catalogue."""
    works: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {
            "limit": 500,
            **({"owner": owner} if owner else {}),
            **({"cursor": cursor} if cursor else {}),
        }
        page = client.request("GET", "/v1/catalogue/works", params=params)
        works += page["works"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    if as_json:
        out.print_json(json.dumps(works))
        return
    rows = table("work", "title", "owner", "status", "seconds", "landmarks")
    for work in works:
        rows.add_row(
            work["work_id"],
            work["title"],
            work["owner"],
            work["status"],
            str(work.get("duration_s", "")),
            str(work.get("landmarks", "")),
        )
    out.print(rows)


@catalogue.command("remove")
@click.argument("work_id")
@with_client(admin=True)
def catalogue_remove(client: ApiClient, work_id: str) -> None:
    """Take WORK_ID out of the catalogue (it stops matching at once)."""
    work = client.request("DELETE", f"/v1/catalogue/works/{work_id}")
    done(f"removed {work['work_id']} ({work['title']})")


@click.group()
def review() -> None:
    """Tracks held for copyright review."""


@review.command("list")
@with_client(admin=True)
@click.option("--json", "as_json", is_flag=True)
def review_list(client: ApiClient, as_json: bool) -> None:
    """Tracks waiting for a reviewer."""
    held = client.request("GET", "/v1/reviews")["tracks"]
    if as_json:
        out.print_json(json.dumps(held))
        return
    rows = table("track", "owner", "title", "matched work", "where", "changed")
    for track in held:
        match = (track.get("copyright", {}).get("matches") or [{}])[0]
        rows.add_row(
            track["track_id"],
            track["owner"],
            track.get("metadata", {}).get("tags", {}).get("title", ""),
            f"{match.get('title', '')} ({match.get('work_id', '')})",
            f"{match.get('upload_offset_s', '')} s",
            match.get("change") or "no",
        )
    out.print(rows)


def _decision(decision: str, summary: str) -> click.Command:
    """`review approve` or `review reject`: the same request, another decision."""

    @click.argument("track_id")
    @click.option("--note", default="")
    @with_client(admin=True)
    def decide(client: ApiClient, track_id: str, note: str) -> None:
        track = client.request(
            "POST", f"/v1/reviews/{track_id}", json={"decision": decision, "note": note}
        )
        done(f"{track_id}: {track['status']}")

    return review.command(decision, help=summary)(decide)


_decision("approve", "Release TRACK_ID: its renditions are made and it is published.")
_decision("reject", "Confirm the match: TRACK_ID is rejected and its uploader told why.")


@click.command()
@click.argument("account")
@click.option("--priority/--no-priority", default=None, help="give ACCOUNT its own lane")
@with_client(admin=True)
def account(client: ApiClient, account: str, priority: bool | None) -> None:
    """Administrators: change ACCOUNT's flags."""
    updated = client.request(
        "PATCH", f"/v1/users/{account}", json={} if priority is None else {"priority": priority}
    )
    out.print_json(json.dumps(updated))
