"""The workflow engine: the stages of one upload, the gates between them, the statuses a track
moves through, and what happens next after each step. Pure: plain data in, plain data out.

    checks        extract_metadata -> resize_artwork
                  analyse_waveform -> normalise_audio       (branches run side by side)
                  check_copyright                           pass · hold · reject
         | gate: every check succeeded, and the track is queued or processing (not held)
    renditions    transcode_128 | transcode_192 | transcode_320 | stream_ladder
         | gate: every rendition succeeded
    publication   index_track | publish_feed | notify_uploader
         | every step succeeded: the track is published

The statuses, and every move between them (``TRANSITIONS``, the only table of them):

    awaiting_upload --admit--> queued --start--> processing --publish--> published
    processing --hold--> held_for_review --approve--> processing
    processing --reject--> rejected                   (a strong copyright match)
    held_for_review --review_reject--> rejected       (a reviewer confirms the match)
    awaiting_upload | queued | processing | held_for_review --fail--> failed
    published | rejected | failed | queued | processing --reprocess--> queued

The rules:

- The join: a stage starts when every step of the stage before it has ended and its gate holds.
  The shell records the start with one conditional write (``TrackStore.claim_stage``), so the
  next stage starts once however many steps report, in whatever order, however often. Stages
  are not Celery chords: a chord's counter counts deliveries, not distinct tasks.
- A step runs while the track is queued or processing; the outcome email also runs alone on a
  track that ended rejected or failed. A step's inputs are the steps before it in its branch and
  every step of the stages before it: that covers what each body reads (below).
- A track that ends unpublished gets the outcome email alone; a published one gets it as a step
  of publication.
- The winner of an outcome's move also records its webhook event (``Decision.events``), once:
  the event's id is derived from the track, the outcome and the reprocessing generation.
- Released from review, the track goes on where it stopped: check steps skipped while it was
  held run again, then the renditions start.

Stage shapes (``Stage``, ``STAGES``, the step specs) stay in ``trackflow.domain.track``: they
are data that the API draws and the local stack sizes its workers from, which need no rules;
this module owns what the shape means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trackflow.domain.track import (
    ACTIVE,
    STAGES,
    STEP_DONE,
    STEP_NAMES,
    Stage,
    Status,
    StepStatus,
)

__all__ = [
    "FIRST_STAGE",
    "LAST_STAGE",
    "NOTHING",
    "STAGES",
    "TRANSITIONS",
    "Decision",
    "Move",
    "Transition",
    "allowed_from",
    "first_unfinished_stage",
    "missing_inputs",
    "on_moved",
    "on_stalled",
    "on_step_finished",
    "prerequisites",
    "runs_when",
    "stage_before",
]

FIRST_STAGE: Stage = STAGES[0]
LAST_STAGE: Stage = STAGES[-1]


def stage_before(stage: Stage) -> Stage | None:
    """The stage that must have passed for ``stage`` to start; None for the first."""
    index = STAGES.index(stage)
    return STAGES[index - 1] if index else None


# --- statuses ---------------------------------------------------------------------------------
class Move(StrEnum):
    """The named transitions of a track's status."""

    ADMIT = "admit"  # its upload arrived and was accepted
    START = "start"  # its first step began
    PUBLISH = "publish"  # every step succeeded
    HOLD = "hold"  # weak copyright evidence: a reviewer decides
    APPROVE = "approve"  # the reviewer releases it
    REJECT = "reject"  # a strong copyright match
    REVIEW_REJECT = "review_reject"  # the reviewer confirms the match
    FAIL = "fail"  # a step gave up, the upload never came or broke the rules
    REPROCESS = "reprocess"  # run the workflow again from the first step


@dataclass(frozen=True)
class Transition:
    move: Move
    sources: frozenset[Status]
    target: Status


def _t(move: Move, sources: set[Status], target: Status) -> Transition:
    return Transition(move, frozenset(sources), target)


S = Status
TRANSITIONS: Mapping[Move, Transition] = {
    t.move: t
    for t in (
        _t(Move.ADMIT, {S.AWAITING_UPLOAD}, S.QUEUED),
        _t(Move.START, {S.QUEUED}, S.PROCESSING),
        _t(Move.PUBLISH, {S.PROCESSING}, S.PUBLISHED),
        _t(Move.HOLD, {S.PROCESSING}, S.HELD_FOR_REVIEW),
        _t(Move.APPROVE, {S.HELD_FOR_REVIEW}, S.PROCESSING),
        _t(Move.REJECT, {S.PROCESSING}, S.REJECTED),
        _t(Move.REVIEW_REJECT, {S.HELD_FOR_REVIEW}, S.REJECTED),
        _t(Move.FAIL, {S.AWAITING_UPLOAD, S.QUEUED, S.PROCESSING, S.HELD_FOR_REVIEW}, S.FAILED),
        _t(Move.REPROCESS, {S.PUBLISHED, S.REJECTED, S.FAILED, S.QUEUED, S.PROCESSING}, S.QUEUED),
    )
}
del S

# Ending here, the track gets the outcome email on its own (publication would have sent it).
_ENDS_UNPUBLISHED = frozenset({Status.REJECTED, Status.FAILED})


def allowed_from(move: Move) -> frozenset[Status]:
    """The statuses ``move`` may leave: the condition of its conditional write."""
    return TRANSITIONS[move].sources


# --- steps ------------------------------------------------------------------------------------
def runs_when(step: str) -> frozenset[Status]:
    """The statuses in which ``step`` runs (in any other it is skipped)."""
    if step == "notify_uploader":
        return ACTIVE | _ENDS_UNPUBLISHED
    return ACTIVE


def prerequisites(step: str) -> tuple[str, ...]:
    """The steps whose outputs ``step`` may read: those before it in its branch and every step
    of earlier stages. That covers each body's real inputs: normalise_audio reads
    analyse_waveform's loudness; the renditions read the normalised master, the tags and the
    cover; index_track, publish_feed and the email read the tags, the fingerprint and the
    renditions."""
    before: list[str] = []
    for stage in STAGES:
        for branch in stage.branches:
            if step in branch:
                return (*before, *branch[: branch.index(step)])
        before.extend(stage.steps)
    raise KeyError(step)


def missing_inputs(track: Mapping[str, Any], step: str) -> tuple[str, ...]:
    """Prerequisites of ``step`` that have not succeeded yet (a stage resent by the sweeper
    while the one before still runs): the step waits for them. A step that runs on an ended
    track (the outcome email) reads no other step's outputs."""
    if track["status"] not in ACTIVE:
        return ()
    return tuple(s for s in prerequisites(step) if _status(track, s) != StepStatus.SUCCEEDED)


# --- the join and the gates -------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What to do next; the shell carries it out with conditional writes."""

    launch: Stage | None = None  # a stage (or some of its branches) to start
    force: bool = False  # start it even if it was started before (its messages were lost)
    publish: bool = False  # move the track to published
    notify: bool = False  # send the outcome email on its own
    # webhook events to record (once each: their ids are deterministic), e.g. track.published
    events: tuple[str, ...] = ()


NOTHING = Decision()


def _status(track: Mapping[str, Any], step: str) -> Any:
    return track["steps"].get(step, {}).get("status")


def _ended(track: Mapping[str, Any], stage: Stage) -> bool:
    return all(_status(track, s) in STEP_DONE for s in stage.steps)


def _passed(track: Mapping[str, Any], stage: Stage) -> bool:
    return all(_status(track, s) == StepStatus.SUCCEEDED for s in stage.steps)


def first_unfinished_stage(steps: Mapping[str, Mapping[str, Any]]) -> Stage | None:
    """The earliest stage with a step that has not ended (None once all have)."""
    track = {"steps": steps}
    return next((stage for stage in STAGES if not _ended(track, stage)), None)


def _gate_open(track: Mapping[str, Any], stage: Stage) -> bool:
    """Renditions only if the checks passed, publication only after the renditions: a stage
    starts only on a track still running whose earlier stages all succeeded."""
    if track["status"] not in ACTIVE:
        return False  # held for review, or ended: nothing more starts unless someone releases it
    earlier = STAGES[: STAGES.index(stage)]
    return all(_passed(track, s) for s in earlier)


def on_step_finished(track: Mapping[str, Any]) -> Decision:
    """After a step ended (or was reported again): start the next stage if this one is over and
    its gate holds and it was not started yet; publish once every step succeeded. On a track
    that has ended or waits for a reviewer, its webhook event is recorded again: the writer that
    won the move may have died before recording it, and the event's id makes a second one a
    no-op."""
    if track["status"] not in ACTIVE:
        event = _EVENT_OF_STATUS.get(track["status"])
        return Decision(events=(event,)) if event else NOTHING
    stage = first_unfinished_stage(track["steps"])
    if stage is None:
        published = track["status"] == Status.PROCESSING and all(
            _status(track, s) == StepStatus.SUCCEEDED for s in STEP_NAMES
        )
        return Decision(publish=True) if published else NOTHING
    if stage.name in track.get("stages", {}) or not _gate_open(track, stage):
        return NOTHING
    return Decision(launch=stage)


# The webhook event the winner of a move records: outcomes, and the wait for a reviewer. It is
# decided where the outcome email is, by the one writer that won the move.
_EVENT_OF_MOVE: Mapping[Move, str] = {
    Move.PUBLISH: "track.published",
    Move.REJECT: "track.rejected",
    Move.REVIEW_REJECT: "track.rejected",
    Move.FAIL: "track.failed",
    Move.HOLD: "track.held_for_review",
}


_EVENT_OF_STATUS: Mapping[str, str] = {
    TRANSITIONS[move].target: event for move, event in _EVENT_OF_MOVE.items()
}


def on_moved(move: Move, track: Mapping[str, Any]) -> Decision:
    """What the one writer that won ``move`` does next."""
    events = (_EVENT_OF_MOVE[move],) if move in _EVENT_OF_MOVE else ()
    if TRANSITIONS[move].target in _ENDS_UNPUBLISHED:
        return Decision(notify=True, events=events)
    if move in (Move.ADMIT, Move.REPROCESS):
        return Decision(launch=FIRST_STAGE)
    if move is Move.APPROVE:
        return _released(track)
    return Decision(events=events) if events else NOTHING


def _released(track: Mapping[str, Any]) -> Decision:
    # A step whose message came while the track was held was skipped, and its branch stopped
    # there: those branches run again (steps that succeeded return at once), then the join goes
    # on as usual.
    for stage in STAGES:
        if stage.name not in track.get("stages", {}):
            break
        skipped = tuple(
            branch
            for branch in stage.branches
            if any(_status(track, s) == StepStatus.SKIPPED for s in branch)
        )
        if skipped:
            return Decision(launch=Stage(stage.name, skipped), force=True)
    return on_step_finished(track)


def on_stalled(track: Mapping[str, Any]) -> Decision:
    """A running track that stopped moving: send its unfinished stage again (its messages were
    lost); if that stage was never started, or every step is done, take the decision its last
    step should have taken."""
    stage = first_unfinished_stage(track["steps"])
    if stage is None or stage.name not in track.get("stages", {}):
        return on_step_finished(track)
    return Decision(launch=stage, force=True)
