"""The DynamoDB tables: keys, indexes and expiry. The bootstrap creates them from here and the
infra tests check Terraform against here."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TABLES", "Index", "Table"]


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None


@dataclass(frozen=True)
class Table:
    name: str  # logical name: the settings' table("<name>")
    hash_key: str
    range_key: str | None = None
    key_types: dict[str, str] = field(default_factory=dict)  # attribute -> S | N | B (default S)
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None

    def attribute_type(self, attribute: str) -> str:
        return self.key_types.get(attribute, "S")

    @property
    def key_attributes(self) -> list[str]:
        names = [self.hash_key, self.range_key]
        for index in self.indexes:
            names += [index.hash_key, index.range_key]
        return list(dict.fromkeys(n for n in names if n))


TABLES: tuple[Table, ...] = (
    Table(
        "tracks",
        "track_id",
        indexes=(
            Index("by_owner", "owner", "created_at"),
            Index("by_status", "status", "updated_at"),
        ),
    ),
    Table("users", "user_id"),
    # user follows: one item per (followed user, follower)
    Table(
        "follows",
        "user_id",
        "follower_id",
        indexes=(Index("by_follower", "follower_id", "user_id"),),
    ),
    # feed entries: one item per (follower, entry), newest last
    Table("feeds", "user_id", "entry", ttl_attribute="expires_at"),
    # works, a counter handing out work numbers, and links from published tracks to their work
    Table(
        "catalogue",
        "work_id",
        indexes=(Index("by_owner", "owner", "work_id"), Index("by_kind", "kind", "work_id")),
    ),
    # hash -> postings (a binary set of work number + anchor time)
    Table("fingerprints", "hash", key_types={"hash": "N"}),
    # side-effect claims, rate-limit buckets and other short-lived records
    Table("idempotency", "key", ttl_attribute="expires_at"),
    # webhook endpoints: by owner (their list), and by audience (a user id, or "*" for an
    # administrator's endpoint that hears of every track) to find who an event goes to
    Table(
        "webhooks",
        "endpoint_id",
        indexes=(
            Index("by_owner", "owner", "created_at"),
            Index("by_audience", "audience", "endpoint_id"),
        ),
    ),
    # one item per event, created by one conditional write (its id is deterministic)
    Table("webhook_events", "event_id", ttl_attribute="expires_at"),
    # one item per (endpoint, event); the range key starts with the event's time: newest last
    Table("webhook_deliveries", "endpoint_id", "delivery_id", ttl_attribute="expires_at"),
)
