"""Fan-out on write: a published track enters each follower's feed.

The first page of followers is written at once; every further page is a task of its own, so a
user with 100,000 followers makes many small tasks, not one giant one. A page is a range of
follower ids (after one, up to another), so followers who come or go meanwhile never shift a
page onto its neighbour; entries have deterministic keys, so a redelivered page writes nothing
new.
"""

from __future__ import annotations

from typing import Any

from trackflow.adapters import aws
from trackflow.adapters.state.social import SocialStore
from trackflow.settings import Lane, Settings, WorkerGroup, get_settings
from trackflow.tasks.app import app, routed

__all__ = ["fan_out", "fan_out_feed", "feed_entry", "social_store"]


def social_store(settings: Settings | None = None) -> SocialStore:
    settings = settings or get_settings()
    return SocialStore(
        aws.client("dynamodb", settings), settings.table("follows"), settings.table("feeds")
    )


def feed_entry(track: dict[str, Any]) -> dict[str, Any]:
    """What a follower's feed shows of a track (small: it travels in fan-out messages)."""
    tags = track.get("metadata", {}).get("tags", {})
    return {
        "entry": SocialStore.entry_key(track["created_at"], track["track_id"]),
        "track_id": track["track_id"],
        "owner": track["owner"],
        "title": tags.get("title") or track.get("filename", ""),
        "artist": tags.get("artist", ""),
        "created_at": track["created_at"],
    }


def _deliver(social: SocialStore, followers: list[str], entry: dict[str, Any], remove: bool) -> int:
    if remove:
        social.remove_entries(followers, entry["entry"])
        return len(followers)
    return social.add_entries(followers, entry)


def fan_out(owner: str, entry: dict[str, Any], lane: Lane, *, remove: bool = False) -> int:
    """Write (or remove) ``entry`` in the feeds of ``owner``'s followers; returns the pages."""
    settings = get_settings()
    social = social_store(settings)
    batch = settings.feed_fanout_batch
    followers, cursor = social.followers(owner, limit=batch)
    _deliver(social, followers, entry, remove)
    pages = 1
    while cursor:
        page, next_cursor = social.followers(owner, limit=batch, after=cursor)
        if page:
            fan_out_feed.apply_async(
                (owner, entry, cursor, page[-1], remove), queue=settings.queue(WorkerGroup.IO, lane)
            )
            pages += 1
        cursor = next_cursor
    return pages


@app.task(
    name=routed("trackflow.fan_out_feed", WorkerGroup.IO),
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=30,
)
def fan_out_feed(
    self: Any, owner: str, entry: dict[str, Any], after: str, up_to: str, remove: bool = False
) -> int:
    """One page: the followers of ``owner`` after ``after`` up to ``up_to``, inclusive."""
    settings = get_settings()
    social = social_store(settings)
    followers, _ = social.followers(owner, limit=settings.feed_fanout_batch, after=after)
    return _deliver(social, [f for f in followers if f <= up_to], entry, remove)
