"""The catalogue of reference works and its fingerprint index in DynamoDB.

Layout (stays fast at 100,000 works: reads are batched by hash, nothing is scanned):
- catalogue table: one item per work (``w00000042``: title, owner, number, landmarks key),
  one counter item handing out work numbers, one link item per published track;
- fingerprints table: one item per landmark hash, its postings a binary set of 8-byte
  (work number, anchor time) entries. ``ADD`` to a set is atomic and idempotent, so ingesting a
  work twice changes nothing, and two works ingested at once do not race.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from trackflow.state.dynamo import from_item, is_condition_failure, now_iso, to_item

__all__ = ["Catalogue", "pack_landmarks", "unpack_landmarks"]

COUNTER_ID = "#counter"
KIND = "work"
_GET_BATCH = 100  # BatchGetItem's limit
_POSTING = struct.Struct(">II")


def pack_landmarks(hashes: np.ndarray, times: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, hashes=hashes.astype(np.uint32), times=times.astype(np.uint32))
    return buffer.getvalue()


def unpack_landmarks(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(data)) as arrays:
        return arrays["hashes"], arrays["times"]


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

    def register(
        self,
        *,
        title: str,
        owner: str,
        hashes: np.ndarray,
        times: np.ndarray,
        duration_s: float,
        track_id: str | None = None,
    ) -> dict[str, Any]:
        """Add a work and index its landmarks. For a published track, at most one work ever
        stands for it, however often this runs."""
        if track_id:
            existing = self._work_for_track(track_id)
            if existing:
                self._index(existing["number"], hashes, times)
                return existing
        number = self._next_number()
        work = {
            "work_id": f"w{number:08d}",
            "number": number,
            "kind": KIND,
            "title": title,
            "owner": owner,
            "duration_s": round(duration_s, 2),
            "landmarks": len(hashes),
            "created_at": now_iso(),
            "status": "indexing",
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
                return self.register(
                    title=title,
                    owner=owner,
                    hashes=hashes,
                    times=times,
                    duration_s=duration_s,
                    track_id=track_id,
                )
        self._db.put_item(TableName=self._works, Item=to_item(work))
        self._index(number, hashes, times)
        self._db.update_item(
            TableName=self._works,
            Key=to_item({"work_id": work["work_id"]}),
            UpdateExpression="SET #s = :active",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_item({":active": "active"}),
        )
        work["status"] = "active"
        return work

    def _work_for_track(self, track_id: str) -> dict[str, Any] | None:
        link = self._db.get_item(
            TableName=self._works,
            Key=to_item({"work_id": f"track:{track_id}"}),
            ConsistentRead=True,
        ).get("Item")
        return self.get(from_item(link)["linked_work"]) if link else None

    def get(self, work_id: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._works, Key=to_item({"work_id": work_id})).get(
            "Item"
        )
        return from_item(item) if item else None

    def works(self, numbers: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Active works by number (removed ones are left out)."""
        ids = [f"w{n:08d}" for n in sorted(set(numbers))]
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), _GET_BATCH):
            keys = [to_item({"work_id": i}) for i in ids[start : start + _GET_BATCH]]
            for item in self._batch_get(self._works, keys):
                work = from_item(item)
                if work.get("status") == "active":
                    found[work["number"]] = work
        return found

    def list(
        self, *, owner: str | None = None, limit: int = 100, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict | None]:
        """Active works, all of them or one owner's, with the cursor of the next page."""
        kwargs: dict[str, Any] = {
            "TableName": self._works,
            "IndexName": "by_owner" if owner else "by_kind",
            "Limit": limit,
        }
        if owner:
            kwargs |= {
                "KeyConditionExpression": "#o = :v",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": to_item({":v": owner}),
            }
        else:
            kwargs |= {
                "KeyConditionExpression": "#k = :v",
                "ExpressionAttributeNames": {"#k": "kind"},
                "ExpressionAttributeValues": to_item({":v": KIND}),
            }
        if cursor:
            kwargs["ExclusiveStartKey"] = to_item(cursor)
        response = self._db.query(**kwargs)
        works = [
            w for w in map(from_item, response.get("Items", [])) if w.get("status") == "active"
        ]
        last = response.get("LastEvaluatedKey")
        return works, from_item(last) if last else None

    def remove(self, work_id: str, hashes: np.ndarray | None, times: np.ndarray | None) -> bool:
        """Take a work out: it stops matching at once; its postings are deleted when known."""
        work = self.get(work_id)
        if not work or work.get("kind") != KIND:
            return False
        self._db.update_item(
            TableName=self._works,
            Key=to_item({"work_id": work_id}),
            UpdateExpression="SET #s = :removed, removed_at = :now REMOVE kind",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_item({":removed": "removed", ":now": now_iso()}),
        )
        if hashes is not None and times is not None:
            self._update_postings(work["number"], hashes, times, "DELETE")
        return True

    # --- postings -------------------------------------------------------------------------------
    def _index(self, number: int, hashes: np.ndarray, times: np.ndarray) -> None:
        self._update_postings(number, hashes, times, "ADD")

    def _update_postings(
        self, number: int, hashes: np.ndarray, times: np.ndarray, action: str
    ) -> None:
        by_hash: dict[int, set[bytes]] = {}
        for h, t in zip(hashes.tolist(), times.tolist(), strict=True):
            by_hash.setdefault(h, set()).add(_POSTING.pack(number, t))

        def update(item: tuple[int, set[bytes]]) -> None:
            value, postings = item
            self._db.update_item(
                TableName=self._prints,
                Key={"hash": {"N": str(value)}},
                UpdateExpression=f"{action} p :p",
                ExpressionAttributeValues={":p": {"BS": list(postings)}},
            )

        with ThreadPoolExecutor(self._threads) as pool:
            list(pool.map(update, by_hash.items()))

    def lookup(self, hashes: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Postings of each hash that has any: (work numbers, anchor times)."""
        values = [int(h) for h in np.unique(hashes)]
        batches = [
            [{"hash": {"N": str(v)}} for v in values[start : start + _GET_BATCH]]
            for start in range(0, len(values), _GET_BATCH)
        ]
        result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with ThreadPoolExecutor(self._threads) as pool:
            for items in pool.map(lambda keys: self._batch_get(self._prints, keys), batches):
                for item in items:
                    raw = b"".join(item["p"]["BS"])
                    pairs = np.frombuffer(raw, dtype=">u4").reshape(-1, 2)
                    result[int(item["hash"]["N"])] = (
                        pairs[:, 0].astype(np.int64),
                        pairs[:, 1].astype(np.int64),
                    )
        return result

    def _batch_get(self, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchGetItem, resending what DynamoDB left unprocessed."""
        items: list[dict[str, Any]] = []
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
