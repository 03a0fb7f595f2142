"""The catalogue of reference works and its fingerprint index in DynamoDB.

Layout (stays fast at 100,000 works: reads are batched by hash, nothing is ever scanned):
- catalogue table: one item per work (``w00000042``: title, owner, number, status), one counter
  item handing out work numbers, and one link item per published track (so a track joins once);
- fingerprints table: one item per landmark hash, its postings a binary set of 8-byte
  (work number, anchor time) entries. ``ADD`` to a set is atomic and idempotent: indexing a
  chunk twice changes nothing, and works indexed at once do not race.

A published track's work is indexed sparsely (one hash in ``sampling``, chosen by hash value,
recorded on the work so that removal takes out the same postings), under keys of their own
(``SAMPLED`` + hash): a sample only nominates its work, which is then compared on all of its
landmarks (``media.fingerprint.match_catalogue``), so each pass reads only its own postings.

A work is indexed in chunks (its hashes split by value), each a small task of its own, so a
three-hour recording is many bounded tasks rather than one long one.
"""

from __future__ import annotations

import builtins
import io
import struct
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from trackflow.adapters.state.dynamo import (
    Update,
    batches,
    from_item,
    is_condition_failure,
    now_iso,
    query_page,
    to_item,
    update_if,
)
from trackflow.logs import get_logger

__all__ = ["HASHES_PER_CHUNK", "Catalogue", "WorkStatus", "pack_landmarks", "unpack_landmarks"]

log = get_logger(__name__)

COUNTER_ID = "#counter"
KIND = "work"
HASHES_PER_CHUNK = 4000
_GET_BATCH = 100  # BatchGetItem's limit
_TRANSACTION = 100  # TransactWriteItems' limit
# How DynamoDB refuses a whole transaction: cancelled for one of its items, or too large a request
_CANCELLED = ("TransactionCanceledException", "ValidationException")
_POSTING = struct.Struct(">II")
SAMPLED = 1 << 24  # added to the hash (23 bits) in the key of a sampled posting


class WorkStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    FINGERPRINTING = "fingerprinting"
    INDEXING = "indexing"
    ACTIVE = "active"
    REMOVED = "removed"
    FAILED = "failed"


MATCHABLE = (WorkStatus.INDEXING, WorkStatus.ACTIVE)


def pack_landmarks(hashes: np.ndarray, times: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, hashes=hashes.astype(np.uint32), times=times.astype(np.uint32))
    return buffer.getvalue()


def unpack_landmarks(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(data)) as arrays:
        return arrays["hashes"], arrays["times"]


def chunk_count(hashes: np.ndarray) -> int:
    return max(1, -(-len(np.unique(hashes)) // HASHES_PER_CHUNK))


class Catalogue:
    def __init__(
        self, dynamodb: Any, works_table: str, fingerprints_table: str, *, threads: int = 16
    ) -> None:
        self._db = dynamodb
        self._works = works_table
        self._prints = fingerprints_table
        self._threads = threads

    # --- works ----------------------------------------------------------------------------------
    def _next_number(self) -> int:
        response = self._db.update_item(
            TableName=self._works,
            Key=to_item({"work_id": COUNTER_ID}),
            UpdateExpression="ADD next_number :one",
            ExpressionAttributeValues=to_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(from_item(response["Attributes"])["next_number"])

    def create(
        self,
        *,
        title: str,
        owner: str,
        status: str,
        track_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A new work; for a published track, the one work that stands for it."""
        if track_id:
            existing = self.work_for_track(track_id)
            if existing:
                return existing
        number = self._next_number()
        work = {
            "work_id": f"w{number:08d}",
            "number": number,
            "kind": KIND,
            "title": title,
            "owner": owner,
            "status": str(status),
            "created_at": now_iso(),
            **fields,
        }
        if track_id:
            work["track_id"] = track_id
            try:
                self._db.put_item(
                    TableName=self._works,
                    Item=to_item({"work_id": f"track:{track_id}", "linked_work": work["work_id"]}),
                    ConditionExpression="attribute_not_exists(work_id)",
                )
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
                return self.work_for_track(track_id) or self.create(
                    title=title, owner=owner, status=status, track_id=track_id, **fields
                )
        self._db.put_item(TableName=self._works, Item=to_item(work))
        return work

    def work_for_track(self, track_id: str) -> dict[str, Any] | None:
        link = self._db.get_item(
            TableName=self._works,
            Key=to_item({"work_id": f"track:{track_id}"}),
            ConsistentRead=True,
        ).get("Item")
        return self.get(from_item(link)["linked_work"]) if link else None

    def get(self, work_id: str) -> dict[str, Any] | None:
        item = self._db.get_item(
            TableName=self._works, Key=to_item({"work_id": work_id}), ConsistentRead=True
        ).get("Item")
        work = from_item(item) if item else None
        return work if work and "number" in work else None

    def update(
        self, work_id: str, *, expect_status: Iterable[str] | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Set fields of a work, only from one of ``expect_status`` if given; None if it was not."""
        u = Update()
        for name, value in fields.items():
            u.set(name, value)
        if expect_status is not None:
            allowed = ", ".join(u.value(s) for s in expect_status)
            u.where(f"{u.path('status')} IN ({allowed})")
        return update_if(self._db, self._works, {"work_id": work_id}, u)

    def works(
        self, numbers: Iterable[int], *, any_status: bool = False
    ) -> dict[int, dict[str, Any]]:
        """Works that can match, by number (removed ones are left out), or all that exist."""
        ids = [f"w{n:08d}" for n in sorted(set(numbers))]
        found: dict[int, dict[str, Any]] = {}
        for batch in batches(ids, _GET_BATCH):
            keys = [to_item({"work_id": i}) for i in batch]
            for item in self._batch_get(self._works, keys):
                work = from_item(item)
                if any_status or work.get("status") in MATCHABLE:
                    found[work["number"]] = work
        return found

    # --- the quad index's snapshots (trackflow/tasks/quad_index.py) -----------------------------
    def index_state(self) -> dict[str, Any]:
        """The counter item: ``next_number`` (the last work number handed out) and
        ``quad_snapshot`` (the quad index's latest snapshot), read in one request."""
        item = self._db.get_item(
            TableName=self._works, Key=to_item({"work_id": COUNTER_ID}), ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else {}

    def claim_quad_compaction(self, generation: int) -> bool:
        """True for the one caller that asks first for snapshot ``generation``."""
        u = Update().set("quad_compaction", generation)
        claimed = u.path("quad_compaction")
        u.where(f"attribute_not_exists({claimed}) OR {claimed} < {u.value(generation)}")
        return update_if(self._db, self._works, {"work_id": COUNTER_ID}, u) is not None

    def record_quad_snapshot(self, snapshot: Mapping[str, Any]) -> bool:
        """Make ``snapshot`` the latest, unless one of its generation or later already is."""
        u = Update().set("quad_snapshot", dict(snapshot))
        latest = u.path("quad_snapshot", "generation")
        u.where(
            f"attribute_not_exists({u.path('quad_snapshot')}) OR "
            f"{latest} < {u.value(snapshot['generation'])}"
        )
        return update_if(self._db, self._works, {"work_id": COUNTER_ID}, u) is not None

    def mark_quads_late(self, number: int) -> None:
        """Note a work given quads after it was numbered (``quad_late``), so that hosts which
        passed over it load it, until a snapshot holds it."""
        self._late("ADD", [number])

    def clear_quads_late(self, numbers: Iterable[int]) -> None:
        self._late("DELETE", numbers)

    def _late(self, action: str, numbers: Iterable[int]) -> None:
        values = [str(n) for n in sorted(set(numbers))]
        if values:
            self._db.update_item(
                TableName=self._works,
                Key=to_item({"work_id": COUNTER_ID}),
                UpdateExpression=f"{action} quad_late :n",
                ExpressionAttributeValues={":n": {"NS": values}},
            )

    def list(
        self,
        *,
        owner: str | None = None,
        limit: int = 100,
        cursor: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Works not removed, all of them or one owner's, with the cursor of the next page."""
        attribute, value = ("owner", owner) if owner else ("kind", KIND)
        kwargs: dict[str, Any] = {
            "TableName": self._works,
            "IndexName": "by_owner" if owner else "by_kind",
            "KeyConditionExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": to_item({":v": value}),
            "Limit": limit,
        }
        works, last = query_page(self._db, cursor, **kwargs)
        return [w for w in works if w.get("status") != WorkStatus.REMOVED], last

    def remove(self, work_id: str) -> dict[str, Any] | None:
        """Take a work out: it stops matching at once (its postings go by background tasks)."""
        return self.update(
            work_id,
            expect_status=[s for s in WorkStatus if s is not WorkStatus.REMOVED],
            status=WorkStatus.REMOVED,
            removed_at=now_iso(),
        )

    # --- postings -------------------------------------------------------------------------------
    def index_chunk(
        self,
        work: Mapping[str, Any],
        hashes: np.ndarray,
        times: np.ndarray,
        chunk: int,
        chunks: int,
        *,
        remove: bool = False,
    ) -> bool:
        """Add (or delete) the postings of one chunk of a work's hashes; True once every chunk
        of an indexing work is in and the work became active."""
        chosen = hashes % chunks == chunk
        keys = hashes[chosen].astype(np.int64) + (SAMPLED if work.get("sampling", 1) > 1 else 0)
        self._update_postings(work["number"], keys, times[chosen], "DELETE" if remove else "ADD")
        if remove:
            return False
        response = self._db.update_item(
            TableName=self._works,
            Key=to_item({"work_id": work["work_id"]}),
            UpdateExpression="ADD chunks_done :c",
            ExpressionAttributeValues={":c": {"NS": [str(chunk)]}},
            ReturnValues="ALL_NEW",
        )
        current = from_item(response["Attributes"])
        if len(current.get("chunks_done", ())) >= chunks:
            return (
                self.update(
                    work["work_id"],
                    expect_status=[WorkStatus.INDEXING],
                    status=WorkStatus.ACTIVE,
                    indexed_at=now_iso(),
                )
                is not None
            )
        return False

    def _update_postings(
        self, number: int, keys: np.ndarray, times: np.ndarray, action: str
    ) -> None:
        """``ADD`` (or ``DELETE``) each hash's postings, a hundred hashes a request in one
        TransactWriteItems: each update stays atomic, and a join takes a hundredth of the
        requests, whose fixed costs (signing, hooks, HTTP) were nearly all of a posting update's
        client CPU, at twice the write units (a transactional write costs two). A batch that
        DynamoDB cancels (a posting list outgrew an item, another transaction held one of its
        items, a throttle) is written again one hash at a time, which knows what to do in each
        case."""
        by_hash: dict[int, set[bytes]] = {}
        for h, t in zip(keys.tolist(), times.tolist(), strict=True):
            by_hash.setdefault(h, set()).add(_POSTING.pack(number, t))
        updates = [
            {
                "TableName": self._prints,
                "Key": {"hash": {"N": str(value)}},
                "UpdateExpression": f"{action} p :p",
                "ExpressionAttributeValues": {":p": {"BS": sorted(postings)}},
            }
            for value, postings in by_hash.items()
        ]

        def write(batch: list[dict[str, Any]]) -> None:
            try:
                self._db.transact_write_items(TransactItems=[{"Update": u} for u in batch])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in _CANCELLED:
                    raise
                for update in batch:
                    self._update_posting(update)

        with ThreadPoolExecutor(self._threads) as pool:
            list(pool.map(write, batches(updates, _TRANSACTION)))

    def _update_posting(self, update: dict[str, Any]) -> None:
        try:
            self._db.update_item(**update)
        except ClientError as error:
            # A hash so common that its postings fill an item says nothing about any one
            # work: like a stop word, it is left out (the other hashes carry the match).
            if "size has exceeded" not in str(error):
                raise
            log.info("fingerprint_hash_saturated", hash=update["Key"]["hash"]["N"])

    def lookup(
        self, hashes: np.ndarray, *, sampled: bool = False
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Postings of each hash that has any: (work numbers, anchor times); of fully indexed
        works, or of ``sampled`` ones."""
        base = SAMPLED if sampled else 0
        values = [int(h) + base for h in np.unique(hashes)]
        keys = [{"hash": {"N": str(v)}} for v in values]
        result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with ThreadPoolExecutor(self._threads) as pool:
            for items in pool.map(
                lambda batch: self._batch_get(self._prints, batch), batches(keys, _GET_BATCH)
            ):
                for item in items:
                    if not item.get("p"):
                        continue
                    raw = b"".join(item["p"]["BS"])
                    pairs = np.frombuffer(raw, dtype=">u4").reshape(-1, 2)
                    result[int(item["hash"]["N"]) - base] = (
                        pairs[:, 0].astype(np.int64),
                        pairs[:, 1].astype(np.int64),
                    )
        return result

    def _batch_get(
        self, table: str, keys: builtins.list[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """BatchGetItem, resending what DynamoDB left unprocessed."""
        items: builtins.list[dict[str, Any]] = []
        request: dict[str, Any] = {table: {"Keys": keys}}
        attempt = 0
        while request:
            response = self._db.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
            attempt += 1
            if request:
                if attempt > 10:
                    raise RuntimeError("DynamoDB kept leaving reads unprocessed")
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then resend
        return items
