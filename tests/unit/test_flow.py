"""The workflow engine on plain data: joins, gates, transitions and decisions, no AWS."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from trackflow.domain.track import STAGES, STEP_NAMES, Status, StepStatus, initial_steps
from trackflow.pipeline import flow
from trackflow.pipeline.flow import NOTHING, TRANSITIONS, Decision, Move

CHECKS, RENDITIONS, PUBLICATION = STAGES
S = Status


# --- a tiny model of the shell: what claim_stage and the conditional transition do -----------
def track_in(status: Status = S.PROCESSING, launched: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "track_id": "t",
        "status": str(status),
        "steps": initial_steps(),
        "stages": {name: "2025-01-01T00:00:00Z" for name in launched},
    }


def step_ends(track: dict[str, Any], step: str, status: StepStatus = StepStatus.SUCCEEDED) -> None:
    track["steps"][step]["status"] = str(status)


def transition(track: dict[str, Any], move: Move) -> bool:
    """The conditional write: the track moves only from a status the table allows."""
    if track["status"] not in flow.allowed_from(move):
        return False
    track["status"] = str(TRANSITIONS[move].target)
    if TRANSITIONS[move].target in (S.REJECTED, S.FAILED):
        for state in track["steps"].values():
            if state["status"] == StepStatus.PENDING:
                state["status"] = str(StepStatus.SKIPPED)
    return True


def perform(track: dict[str, Any], decision: Decision) -> list[str]:
    """Carry out a decision as the shell does; returns what was sent or written."""
    done = []
    if decision.publish and transition(track, Move.PUBLISH):
        done.append("published")
    if decision.launch is not None:
        name = decision.launch.name
        if decision.force or name not in track["stages"]:  # claim_stage: the first one wins
            track["stages"][name] = "now"
            done.append(f"launch {name}" + (" again" if decision.force else ""))
    if decision.notify:
        done.append("notify")
    return done


def finish(track: dict[str, Any], step: str) -> list[str]:
    """A step succeeds and the shell asks the engine what comes next."""
    step_ends(track, step)
    return perform(track, flow.on_step_finished(track))


def orders(stage: flow.Stage) -> list[tuple[str, ...]]:
    """Every order in which the stage's steps can finish: each branch's steps in turn."""
    return [
        order
        for order in itertools.permutations(stage.steps)
        if all(
            order.index(a) < order.index(b)
            for branch in stage.branches
            for a, b in itertools.pairwise(branch)
        )
    ]


def passed(track: dict[str, Any], *stages: flow.Stage) -> None:
    for stage in stages:
        track["stages"][stage.name] = "then"
        for step in stage.steps:
            step_ends(track, step)


# --- the join --------------------------------------------------------------------------------
def test_the_checks_can_finish_in_thirty_orders():
    """Branch order respected, the five checks finish in 5!/(2*2) orders; the four renditions
    in 4!, the three publication steps in 3!."""
    assert len(orders(CHECKS)) == 30
    assert len(orders(RENDITIONS)) == 24
    assert len(orders(PUBLICATION)) == 6


@pytest.mark.parametrize("order", orders(CHECKS))
def test_renditions_start_once_when_the_last_check_ends_in_any_order(order):
    """Whatever order the checks finish in, the renditions start once, after the last."""
    track = track_in(launched=("checks",))
    sent = [finish(track, step) for step in order]
    assert sent == [[]] * 4 + [["launch renditions"]]


@pytest.mark.parametrize("order", orders(RENDITIONS))
def test_publication_starts_once_when_the_last_rendition_ends_in_any_order(order):
    """Whatever order the renditions finish in, publication starts once, after the last."""
    track = track_in(launched=("checks", "renditions"))
    passed(track, CHECKS)
    sent = [finish(track, step) for step in order]
    assert sent == [[]] * (len(order) - 1) + [["launch publication"]]


@pytest.mark.parametrize("order", orders(PUBLICATION))
def test_the_track_is_published_once_when_the_last_publication_step_ends(order):
    """Whatever order publication's steps finish in, the track is published once, at the end."""
    track = track_in(launched=("checks", "renditions", "publication"))
    passed(track, CHECKS, RENDITIONS)
    sent = [finish(track, step) for step in order]
    assert sent == [[], [], ["published"]]
    assert track["status"] == S.PUBLISHED


@pytest.mark.parametrize("order", orders(CHECKS)[::7])
def test_a_whole_workflow_launches_each_stage_once_and_publishes_once(order):
    """From admission to publication, every stage is launched once and the track published once."""
    track = track_in(S.AWAITING_UPLOAD)
    assert transition(track, Move.ADMIT)
    sent = perform(track, flow.on_moved(Move.ADMIT, track))
    assert transition(track, Move.START)
    for step in (*order, *RENDITIONS.steps, *PUBLICATION.steps):
        sent += finish(track, step)
    assert sent == ["launch checks", "launch renditions", "launch publication", "published"]


def test_a_step_reported_twice_starts_nothing_twice():
    """A step reported again (a redelivered message) decides nothing new, before or after the
    stage's end."""
    track = track_in(launched=("checks",))
    for step in ("extract_metadata", "extract_metadata", "resize_artwork", "analyse_waveform"):
        assert finish(track, step) == []
    assert finish(track, "normalise_audio") == []
    assert finish(track, "check_copyright") == ["launch renditions"]
    assert finish(track, "check_copyright") == []
    assert flow.on_step_finished(track) == NOTHING


def test_a_redelivered_stage_launch_decides_nothing():
    """Once the next stage is recorded as launched, the decision for it is nothing."""
    track = track_in(launched=("checks", "renditions"))
    passed(track, CHECKS)
    assert flow.on_step_finished(track) == NOTHING


def test_two_steps_ending_together_both_decide_to_launch_and_the_claim_lets_one_through():
    """Two last steps read the same finished stage: both decide launch, one claim wins."""
    track = track_in(launched=("checks",))
    for step in CHECKS.steps:
        step_ends(track, step)
    first, second = flow.on_step_finished(track), flow.on_step_finished(track)
    assert first == second == Decision(launch=RENDITIONS)
    assert perform(track, first) + perform(track, second) == ["launch renditions"]


def test_a_step_that_ends_while_another_is_pending_waits():
    """A stage with a step still pending or running is not over: nothing starts."""
    track = track_in(launched=("checks",))
    for step in CHECKS.steps[:-1]:
        step_ends(track, step)
    track["steps"]["check_copyright"]["status"] = str(StepStatus.RUNNING)
    assert flow.on_step_finished(track) == NOTHING


# --- failure, review, rejection, reprocessing ---------------------------------------------------
def test_a_failure_mid_stage_ends_the_track_tells_the_uploader_and_starts_nothing_more():
    """A check that gives up fails the track and sends the email alone; the steps still running
    then end without starting the renditions."""
    track = track_in(launched=("checks",))
    finish(track, "extract_metadata")
    step_ends(track, "analyse_waveform", StepStatus.FAILED)
    assert transition(track, Move.FAIL)
    assert perform(track, flow.on_moved(Move.FAIL, track)) == ["notify"]
    assert track["steps"]["transcode_128"]["status"] == StepStatus.SKIPPED
    assert finish(track, "check_copyright") == []
    assert finish(track, "resize_artwork") == []
    assert not transition(track, Move.FAIL)  # ended once: the email goes once


def test_a_copyright_match_rejects_the_track_and_tells_the_uploader():
    """A strong match rejects a processing track and sends the email alone."""
    track = track_in(launched=("checks",))
    assert transition(track, Move.REJECT)
    assert perform(track, flow.on_moved(Move.REJECT, track)) == ["notify"]
    for step in CHECKS.steps:
        assert finish(track, step) == []


def test_held_for_review_then_approved_the_renditions_start():
    """A held track starts nothing when its checks end; approval starts the renditions once."""
    track = track_in(launched=("checks",))
    assert transition(track, Move.HOLD)
    assert [finish(track, step) for step in CHECKS.steps] == [[]] * 5
    assert transition(track, Move.APPROVE)
    assert perform(track, flow.on_moved(Move.APPROVE, track)) == ["launch renditions"]
    assert not transition(track, Move.APPROVE)  # a second reviewer's approval changes nothing


def test_a_check_skipped_while_held_runs_again_on_approval_before_the_renditions():
    """A check whose message came while the track was held (skipped) runs again on approval,
    with its branch, and only then do the renditions start."""
    track = track_in(launched=("checks",))
    finish(track, "check_copyright")
    finish(track, "analyse_waveform")
    finish(track, "normalise_audio")
    assert transition(track, Move.HOLD)
    finish(track, "extract_metadata")
    step_ends(track, "resize_artwork", StepStatus.SKIPPED)
    # held: the step's report records the held event again, and starts nothing
    assert flow.on_step_finished(track) == Decision(events=("track.held_for_review",))
    assert transition(track, Move.APPROVE)
    decision = flow.on_moved(Move.APPROVE, track)
    assert decision.force and decision.launch.branches == (("extract_metadata", "resize_artwork"),)
    assert flow.on_step_finished(track) == NOTHING  # the gate: a skipped check did not pass
    assert finish(track, "resize_artwork") == ["launch renditions"]


def test_held_for_review_then_rejected_the_uploader_is_told_and_nothing_starts():
    """A reviewer's rejection ends a held track and sends the email alone."""
    track = track_in(launched=("checks",))
    assert transition(track, Move.HOLD)
    assert transition(track, Move.REVIEW_REJECT)
    assert perform(track, flow.on_moved(Move.REVIEW_REJECT, track)) == ["notify"]
    assert not transition(track, Move.APPROVE)
    assert finish(track, "extract_metadata") == []


def test_reprocessing_a_published_track_runs_the_workflow_again_from_the_start():
    """A finished track reprocessed is queued with fresh steps and its first stage starts."""
    track = track_in(launched=("checks", "renditions", "publication"))
    passed(track, CHECKS, RENDITIONS, PUBLICATION)
    track["status"] = str(S.PUBLISHED)
    assert transition(track, Move.REPROCESS)
    track.update(steps=initial_steps(), stages={})
    assert perform(track, flow.on_moved(Move.REPROCESS, track)) == ["launch checks"]
    assert transition(track, Move.START)
    sent = [s for step in STEP_NAMES for s in finish(track, step)]
    assert sent == ["launch renditions", "launch publication", "published"]


def test_a_step_reported_after_publication_decides_nothing():
    """A late redelivery on a published track starts nothing and publishes nothing."""
    track = track_in(S.PUBLISHED, launched=("checks", "renditions", "publication"))
    passed(track, CHECKS, RENDITIONS, PUBLICATION)
    # only the outcome's event again, a no-op if the winner of the move recorded it
    assert flow.on_step_finished(track) == Decision(events=("track.published",))


def test_a_queued_track_does_not_publish():
    """Publication is a move from processing only: a queued track with every step done waits."""
    track = track_in(S.QUEUED, launched=("checks", "renditions", "publication"))
    passed(track, CHECKS, RENDITIONS, PUBLICATION)
    assert flow.on_step_finished(track) == NOTHING


# --- the sweeper ------------------------------------------------------------------------------
def test_a_stalled_track_gets_its_unfinished_stage_sent_again():
    """A stalled track's launched, unfinished stage is sent again, past the claim."""
    track = track_in(launched=("checks", "renditions"))
    passed(track, CHECKS)
    finish(track, "transcode_128")
    assert flow.on_stalled(track) == Decision(launch=RENDITIONS, force=True)


def test_a_stalled_track_whose_next_stage_was_never_claimed_gets_it_once():
    """A stage over whose successor was never claimed: the successor is claimed, not forced."""
    track = track_in(launched=("checks",))
    passed(track, CHECKS)
    assert flow.on_stalled(track) == Decision(launch=RENDITIONS)


def test_a_stalled_track_with_every_step_done_is_published():
    """Every step succeeded but publication was lost: the sweeper publishes."""
    track = track_in(launched=("checks", "renditions", "publication"))
    passed(track, CHECKS, RENDITIONS, PUBLICATION)
    assert flow.on_stalled(track) == Decision(publish=True)


# --- steps: when they run and what they read -------------------------------------------------
def test_prerequisites_are_the_branch_before_and_every_earlier_stage():
    """A step's inputs: the steps before it in its branch and every step of earlier stages."""
    assert flow.prerequisites("extract_metadata") == ()
    assert flow.prerequisites("check_copyright") == ()
    assert flow.prerequisites("resize_artwork") == ("extract_metadata",)
    assert flow.prerequisites("normalise_audio") == ("analyse_waveform",)
    assert flow.prerequisites("transcode_192") == CHECKS.steps
    assert flow.prerequisites("notify_uploader") == (*CHECKS.steps, *RENDITIONS.steps)
    with pytest.raises(KeyError):
        flow.prerequisites("no_such_step")


# What each body in tasks/steps.py reads from other steps (fields and artifacts).
READS = {
    "normalise_audio": {"analyse_waveform"},  # loudness.input
    "transcode_128": {"normalise_audio", "extract_metadata", "resize_artwork"},
    "index_track": {"extract_metadata", "check_copyright", *RENDITIONS.steps},
    "publish_feed": {"extract_metadata", *RENDITIONS.steps},
    "notify_uploader": {"extract_metadata", *RENDITIONS.steps},
}


@pytest.mark.parametrize("step", sorted(READS))
def test_prerequisites_cover_what_each_step_reads(step):
    """Every step output a body reads is among its prerequisites."""
    assert READS[step] <= set(flow.prerequisites(step))


def test_a_step_waits_for_missing_inputs_unless_the_track_ended():
    """Missing inputs make a step wait on a running track; on an ended one (the email sent
    alone) nothing is required."""
    track = track_in(launched=("checks", "renditions"))
    passed(track, CHECKS)
    step_ends(track, "transcode_128")
    assert flow.missing_inputs(track, "notify_uploader") == (
        "transcode_192",
        "transcode_320",
        "stream_ladder",
    )
    assert flow.missing_inputs(track, "transcode_320") == ()
    track["status"] = str(S.FAILED)
    assert flow.missing_inputs(track, "notify_uploader") == ()


def test_steps_run_while_the_track_runs_and_the_email_also_after_it_ended_unpublished():
    """Every step runs when queued or processing; the email also on a rejected or failed track."""
    for step in STEP_NAMES:
        expected = {S.QUEUED, S.PROCESSING}
        if step == "notify_uploader":
            expected |= {S.REJECTED, S.FAILED}
        assert flow.runs_when(step) == expected, step


# --- the transition table ----------------------------------------------------------------------
ALLOWED = {
    (S.AWAITING_UPLOAD, Move.ADMIT, S.QUEUED),
    (S.QUEUED, Move.START, S.PROCESSING),
    (S.PROCESSING, Move.PUBLISH, S.PUBLISHED),
    (S.PROCESSING, Move.HOLD, S.HELD_FOR_REVIEW),
    (S.HELD_FOR_REVIEW, Move.APPROVE, S.PROCESSING),
    (S.PROCESSING, Move.REJECT, S.REJECTED),
    (S.HELD_FOR_REVIEW, Move.REVIEW_REJECT, S.REJECTED),
    (S.AWAITING_UPLOAD, Move.FAIL, S.FAILED),
    (S.QUEUED, Move.FAIL, S.FAILED),
    (S.PROCESSING, Move.FAIL, S.FAILED),
    (S.HELD_FOR_REVIEW, Move.FAIL, S.FAILED),
    (S.PUBLISHED, Move.REPROCESS, S.QUEUED),
    (S.REJECTED, Move.REPROCESS, S.QUEUED),
    (S.FAILED, Move.REPROCESS, S.QUEUED),
    (S.QUEUED, Move.REPROCESS, S.QUEUED),
    (S.PROCESSING, Move.REPROCESS, S.QUEUED),
}


def test_the_transition_table_allows_exactly_these_moves():
    """The table holds every allowed (from, move, to) and nothing else."""
    table = {(s, t.move, t.target) for t in TRANSITIONS.values() for s in t.sources}
    assert table == ALLOWED


@pytest.mark.parametrize(("status", "move"), list(itertools.product(Status, Move)))
def test_a_move_is_allowed_only_from_its_listed_statuses(status, move):
    """Every (status, move) pair: allowed exactly when the table lists it."""
    track = track_in(status)
    listed = any(s == status and m == move for s, m, _ in ALLOWED)
    assert transition(track, move) == listed
    assert track["status"] == (TRANSITIONS[move].target if listed else status)


@pytest.mark.parametrize(
    ("status", "move"),
    [
        (S.PUBLISHED, Move.PUBLISH),  # published twice
        (S.HELD_FOR_REVIEW, Move.PUBLISH),  # a held track is not published
        (S.HELD_FOR_REVIEW, Move.REJECT),  # a check cannot reject what a reviewer holds
        (S.PROCESSING, Move.REVIEW_REJECT),  # nor a reviewer what was already approved
        (S.HELD_FOR_REVIEW, Move.REPROCESS),  # held tracks wait for their reviewer
        (S.AWAITING_UPLOAD, Move.REPROCESS),  # nothing was uploaded to run again
        (S.PUBLISHED, Move.FAIL),  # an ended track stays ended
        (S.QUEUED, Move.ADMIT),  # a duplicate event admits nothing
    ],
)
def test_moves_that_are_not_allowed(status, move):
    """A few moves the table refuses, each for a reason in the product."""
    assert status not in flow.allowed_from(move)


def test_tracks_that_end_unpublished_get_the_email_alone_and_others_do_not():
    """The winner of a move that ends a track unpublished sends the email; no other move does."""
    track = track_in()
    for move in Move:
        notifies = TRANSITIONS[move].target in (S.REJECTED, S.FAILED)
        assert flow.on_moved(move, track).notify == notifies, move


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (S.PUBLISHED, "track.published"),
        (S.REJECTED, "track.rejected"),
        (S.FAILED, "track.failed"),
        (S.HELD_FOR_REVIEW, "track.held_for_review"),
    ],
)
def test_a_step_reported_after_the_outcome_records_its_event_again(status: S, event: str):
    """A redelivered report on an ended or held track asks for the outcome's event (idempotent
    by id), so a winner that died between its move and the event loses nothing."""
    track = track_in(status, launched=("checks",))
    assert flow.on_step_finished(track) == Decision(events=(event,))
