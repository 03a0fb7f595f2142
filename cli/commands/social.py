"""Listeners' commands: `search`, `follow`, `unfollow`, `feed`, `profile`."""

from __future__ import annotations

import json

import click

from trackflow.cli.client import ApiClient
from trackflow.cli.console import done, out, table
from trackflow.cli.identity import with_client

__all__ = ["feed", "follow", "profile", "search", "unfollow"]


@click.command()
@click.argument("query")
@with_client()
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(client: ApiClient, query: str, limit: int, offset: int, as_json: bool) -> None:
    """Search published tracks (prefixes, any case, with or without accents)."""
    page = client.request(
        "GET", "/v1/search", params={"q": query, "limit": limit, "offset": offset}
    )
    if as_json:
        out.print_json(json.dumps(page))
        return
    hits = table("title", "artist", "album", "uploader", "track", title=f"{page['total']} tracks")
    for hit in page["hits"]:
        hits.add_row(hit["title"], hit["artist"], hit["album"], hit["uploader"], hit["track_id"])
    out.print(hits)


def _following(name: str, method: str, summary: str, said: str) -> click.Command:
    """`follow` or `unfollow`: one request to WHOM's followers, by another method."""

    @click.argument("whom")
    @with_client()
    def change(client: ApiClient, whom: str) -> None:
        client.request(method, f"/v1/users/{whom}/followers")
        done(said.format(whom=whom))

    return click.command(name, help=summary)(change)


follow = _following(
    "follow", "POST", "Follow WHOM: their next tracks reach your feed.", "following {whom}"
)
unfollow = _following("unfollow", "DELETE", "Stop following WHOM.", "no longer following {whom}")


@click.command()
@with_client()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def feed(client: ApiClient, limit: int, as_json: bool) -> None:
    """Your feed: tracks published by the people you follow, newest first."""
    page = client.request("GET", "/v1/feed", params={"limit": limit})
    if as_json:
        out.print_json(json.dumps(page))
        return
    entries = table("when", "who", "title", "artist", "track")
    for entry in page["entries"]:
        entries.add_row(
            entry["created_at"][:16],
            entry["owner"],
            entry["title"],
            entry["artist"],
            entry["track_id"],
        )
    out.print(entries)


@click.command()
@with_client()
@click.option("--email", help="where your emails go")
@click.option("--emails/--no-emails", "emails", default=None, help="opt in to or out of emails")
def profile(client: ApiClient, email: str | None, emails: bool | None) -> None:
    """Show (or change) your profile."""
    changes = {
        k: v
        for k, v in (("email", email), ("email_opt_out", None if emails is None else not emails))
        if v is not None
    }
    me = (
        client.request("PATCH", "/v1/me", json=changes)
        if changes
        else client.request("GET", "/v1/me")
    )
    out.print_json(json.dumps(me))
