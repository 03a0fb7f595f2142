"""One DynamoDB item per track: its status, steps, results and outputs.

Every change is a single conditional UpdateItem, so that two workers (a redelivered message, a
duplicate event) can never move a track backwards or start it twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trackflow.adapters.state.dynamo import (
    Update,
    from_item,
    now_iso,
    parse_iso,
    query_page,
    to_item,
    update_if,
)
from trackflow.domain.track import ACTIVE, TERMINAL, Status, StepStatus
from trackflow.pipeline.flow import TRANSITIONS, Move, allowed_from

__all__ = ["BY_OWNER_INDEX", "BY_STATUS_INDEX", "MAX_IGNORED_VERSIONS", "StepStart", "TrackStore"]

BY_OWNER_INDEX = "by_owner"
BY_STATUS_INDEX = "by_status"

# Objects that arrived under an admitted track's key are noted on its record, up to this many:
# a presigned POST can be used again until it expires, and the record must stay small.
MAX_IGNORED_VERSIONS = 10


class StepStart(StrEnum):
    RUN = "run"  # the step is ours to run
    DONE = "done"  # it already succeeded (a redelivered message)
    SKIP = "skip"  # the track is no longer in a state where this step runs


@dataclass(frozen=True)
class Begun:
    outcome: StepStart
    track: dict[str, Any]


class TrackStore:
    """Track records in the tracks table."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    # --- reading ------------------------------------------------------------------------------
    def get(self, track_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._table, Key=to_item({"track_id": track_id}), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def list_for_owner(
        self, owner: str, limit: int = 50, cursor: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The owner's tracks, newest first, and the cursor of the next page."""
        return query_page(
            self._db,
            cursor,
            TableName=self._table,
            IndexName=BY_OWNER_INDEX,
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues=to_item({":o": owner}),
            ScanIndexForward=False,
            Limit=limit,
        )

    def list_by_status(
        self, status: Status, updated_before: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Tracks in one status, oldest update first (the sweeper's view)."""
        condition = "#s = :s"
        values: dict[str, Any] = {":s": str(status)}
        if updated_before:
            condition += " AND #u < :u"
            values[":u"] = updated_before
        response = self._db.query(
            TableName=self._table,
            IndexName=BY_STATUS_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status", "#u": "updated_at"}
            if updated_before
            else {"#s": "status"},
            ExpressionAttributeValues=to_item(values),
            Limit=limit,
        )
        return [from_item(i) for i in response.get("Items", [])]

    # --- writing ------------------------------------------------------------------------------
    def create(self, item: Mapping[str, Any]) -> None:
        self._db.put_item(
            TableName=self._table,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(track_id)",
        )

    def _update(self, track_id: str, update: Update) -> dict[str, Any] | None:
        """Apply ``update``; None if its condition failed."""
        return update_if(self._db, self._table, {"track_id": track_id}, update)

    def transition(
        self,
        track_id: str,
        to: Status,
        *,
        allowed_from: Iterable[Status],
        fields: Mapping[str | tuple[str, ...], Any] | None = None,
    ) -> dict[str, Any] | None:
        """Move the track to ``to`` only from one of ``allowed_from``; None if it was elsewhere.

        A track that ends unpublished says in the same write that its steps still pending will
        never run, so that no reader sees it ended with steps waiting."""
        allowed = [str(s) for s in allowed_from]
        if to not in (Status.REJECTED, Status.FAILED):
            return self._update(track_id, self._transition(to, allowed, fields))
        # steps that ``fields`` itself ends (a failing step): not to be marked skipped as well
        ended_here = {p[1] for p in (fields or {}) if isinstance(p, tuple) and p[0] == "steps"}
        while True:
            current = self.get(track_id)
            if current is None or current["status"] not in allowed:
                return None
            u = self._transition(to, allowed, fields)
            pending = u.value(str(StepStatus.PENDING))
            for name, state in current.get("steps", {}).items():
                if state.get("status") == StepStatus.PENDING and name not in ended_here:
                    # Only while still pending: a step that starts meanwhile records its own end.
                    u.set(("steps", name, "status"), str(StepStatus.SKIPPED))
                    u.where(f"{u.path('steps', name, 'status')} = {pending}")
            track = self._update(track_id, u)
            if track is not None:
                return track
            # A step left pending, or the track left ``allowed``: look again (each retry has one
            # pending step fewer, or returns None).

    def apply(
        self,
        track_id: str,
        move: Move,
        *,
        fields: Mapping[str | tuple[str, ...], Any] | None = None,
    ) -> dict[str, Any] | None:
        """Make the named transition ``move`` of the workflow's table, if the track's status
        allows it; None if it was elsewhere."""
        return self.transition(
            track_id, TRANSITIONS[move].target, allowed_from=allowed_from(move), fields=fields
        )

    @staticmethod
    def _transition(
        to: Status, allowed: Iterable[str], fields: Mapping[str | tuple[str, ...], Any] | None
    ) -> Update:
        u = Update()
        now = now_iso()
        u.where(f"{u.path('status')} IN ({', '.join(u.value(s) for s in allowed)})")
        u.set("status", str(to)).set("updated_at", now)
        if to in TERMINAL:
            u.set("finished_at", now)
        for name, value in (fields or {}).items():
            u.set(name, value)
        return u

    def mark_launched(self, track_id: str) -> None:
        self.mark(track_id, launch={"at": now_iso()})

    def claim_stage(self, track_id: str, stage: str) -> bool:
        """Record that ``stage`` started; True for the one caller that got to record it."""
        u = Update()
        u.where(f"attribute_not_exists({u.path('stages', stage)})")
        u.set(("stages", stage), now_iso())
        return self._update(track_id, u) is not None

    def mark(self, track_id: str, **fields: Any) -> None:
        """Set bookkeeping fields of an existing track."""
        u = Update()
        for name, value in fields.items():
            u.set(name, value)
        u.where("attribute_exists(track_id)")
        self._update(track_id, u)

    def clear(self, track_id: str, *names: str) -> None:
        """Remove fields that no longer hold (a reprocessed track's old error); a track deleted
        meanwhile is not brought back as a husk of its key."""
        u = Update()
        for name in names:
            u.remove(name)
        u.where("attribute_exists(track_id)")
        self._update(track_id, u)

    def claim_resume(self, track_id: str, *, seen_updated_at: str) -> dict[str, Any] | None:
        """Take a stalled track for resuming, if nobody touched it since ``seen_updated_at``."""
        u = Update()
        u.where(f"{u.path('updated_at')} = {u.value(seen_updated_at)}")
        u.increment("resumes").set("updated_at", now_iso()).remove("launch")
        return self._update(track_id, u)

    def note_ignored_version(self, track_id: str, name: str, note: Mapping[str, Any]) -> bool:
        """Note on the record that the object ``name`` (its version id) arrived under the key
        of an admitted track and was not processed: once per object, in
        ``source.ignored_versions``, at most ``MAX_IGNORED_VERSIONS`` of them (past that,
        ``source.ignored_versions_truncated``). True if this call added the note. Neither the
        status nor ``updated_at`` changes: to the workflow and the sweeper nothing happened."""
        for _ in range(2):
            u = Update()
            entries = u.path("source", "ignored_versions")
            entry = u.path("source", "ignored_versions", name)
            u.where(f"attribute_exists({entries})")
            u.where(f"attribute_not_exists({entry})")
            u.where(f"size({entries}) < {u.value(MAX_IGNORED_VERSIONS)}")
            u.set(("source", "ignored_versions", name), dict(note))
            if self._update(track_id, u) is not None:
                return True
            current = self.get(track_id) or {}
            source = current.get("source")
            if not isinstance(source, Mapping):
                return False  # never admitted: there is nothing to compare with
            noted = source.get("ignored_versions")
            if isinstance(noted, Mapping):
                if name not in noted:  # full
                    full = Update().set(("source", "ignored_versions_truncated"), True)
                    self._update(track_id, full.where("attribute_exists(track_id)"))
                return False
            # admitted before versions were noted: give it the map, then note
            init = Update()
            init.where(f"attribute_exists({init.path('source')})")
            init.set_if_absent(("source", "ignored_versions"), {})
            self._update(track_id, init)
        return False

    def delete(self, track_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key=to_item({"track_id": track_id}))

    def begin_step(
        self, track_id: str, step: str, *, runs_when: Iterable[Status] = ACTIVE
    ) -> Begun:
        """Claim ``step`` for a run if the track is in one of ``runs_when`` and the step has not
        succeeded yet."""
        u = Update()
        now = now_iso()
        states = ", ".join(u.value(str(s)) for s in runs_when)
        u.where(f"{u.path('status')} IN ({states})")
        u.where(f"{u.path('steps', step, 'status')} <> {u.value(str(StepStatus.SUCCEEDED))}")
        u.set(("steps", step, "status"), str(StepStatus.RUNNING))
        u.set(("steps", step, "started_at"), now)
        u.increment(("steps", step, "attempts"))
        u.remove(("steps", step, "finished_at"))
        u.set("updated_at", now)
        track = self._update(track_id, u)
        if track is not None:
            if track["status"] == Status.QUEUED:
                track = self.apply(track_id, Move.START) or self.get(track_id) or track
            return Begun(StepStart.RUN, track)
        track = self.get(track_id)
        if track is None:
            raise LookupError(f"no track {track_id}")
        if track["steps"][step]["status"] == StepStatus.SUCCEEDED:
            return Begun(StepStart.DONE, track)
        return Begun(StepStart.SKIP, track)

    def finish_step(
        self,
        track_id: str,
        step: str,
        *,
        started_at: str,
        cpu_s: float | None = None,
        fields: Mapping[str | tuple[str, ...], Any] | None = None,
        outputs: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Record the step's success with its results (and the CPU seconds it took), in one
        write; ``started_at`` is when its work began (after any wait for a core)."""
        u = Update()
        now = now_iso()
        u.set(("steps", step, "status"), str(StepStatus.SUCCEEDED))
        u.set(("steps", step, "started_at"), started_at)
        u.set(("steps", step, "finished_at"), now)
        u.set(("steps", step, "duration_s"), _seconds_between(started_at, now))
        if cpu_s is not None:
            u.set(("steps", step, "cpu_s"), round(cpu_s, 3))
        u.remove(("steps", step, "error"))
        for name, uri in (outputs or {}).items():
            u.set(("outputs", name), uri)
        for path, value in (fields or {}).items():
            u.set(path, value)
        u.set("updated_at", now)
        track = self._update(track_id, u)
        assert track is not None  # unconditional
        return track

    def end_step(
        self, track_id: str, step: str, status: StepStatus, error: Mapping[str, Any] | None = None
    ) -> None:
        """Record a step as failed or skipped (or note the error of an attempt still retrying)."""
        u = Update()
        now = now_iso()
        u.set(("steps", step, "status"), str(status))
        if status is not StepStatus.RUNNING:
            u.set(("steps", step, "finished_at"), now)
        if error:
            u.set(("steps", step, "error"), dict(error))
        u.set("updated_at", now)
        self._update(track_id, u)

    def fail(
        self,
        track_id: str,
        error: Mapping[str, Any],
        *,
        step: str | None = None,
        credited_to: str | None = None,
    ) -> dict[str, Any] | None:
        """End the track as failed (unless it already ended), with ``step`` failed and the steps
        not yet run skipped, in one write. The track's error names ``credited_to`` when given
        (a fault of the input, whichever step met it first), else ``step``."""
        named = credited_to or step
        fields: dict[str | tuple[str, ...], Any] = {
            "error": {**error, **({"step": named} if named else {})}
        }
        if step:
            fields[("steps", step, "status")] = str(StepStatus.FAILED)
            fields[("steps", step, "finished_at")] = now_iso()
            fields[("steps", step, "error")] = dict(error)
        return self.apply(track_id, Move.FAIL, fields=fields)

    # --- notifications: at most one email per outcome ---------------------------------------
    def claim_notification(
        self, track_id: str, outcome: str, *, owner: str, slot_at: float, lease_s: float
    ) -> dict[str, Any]:
        """Claim the right to send ``outcome``'s email at ``slot_at`` for ``owner`` (a task id);
        returns the claim as it stands, ours or another's. A claim whose lease ran out (its
        sender died before confirming) can be taken over."""
        u = Update()
        entry = u.path("notifications", outcome)
        state = u.path("notifications", outcome, "state")
        lease = u.path("notifications", outcome, "lease_until")
        holder = u.path("notifications", outcome, "owner")
        u.where(
            f"attribute_not_exists({entry}) OR ({state} = {u.value('sending')} AND "
            f"({lease} < {u.value(time.time())} OR {holder} = {u.value(owner)}))"
        )
        claim = {
            "state": "sending",
            "owner": owner,
            "slot_at": slot_at,
            "lease_until": slot_at + lease_s,
        }
        u.set(("notifications", outcome), claim)
        track = self._update(track_id, u) or self.get(track_id) or {}
        return track.get("notifications", {}).get(outcome, {})

    def confirm_notification(self, track_id: str, outcome: str, record: Mapping[str, Any]) -> None:
        self._update(track_id, Update().set(("notifications", outcome), dict(record)))


def _seconds_between(start_iso: str, end_iso: str) -> float:
    return round((parse_iso(end_iso) - parse_iso(start_iso)).total_seconds(), 3)
