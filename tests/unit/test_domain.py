"""Pure domain rules: keys, the track record, update expressions, verdicts, emails, tokens."""

from __future__ import annotations

import json
import time
import unicodedata

import jwt
import pytest

from trackflow.adapters.state.dynamo import Update, from_item, to_item
from trackflow.auth import AuthError, mint_token, token_secret, verify_token
from trackflow.domain.copyright import change_words, judge, landmark_evidence, quad_evidence
from trackflow.domain.emails import compose
from trackflow.domain.keys import media_key, parse_upload_key, safe_filename, upload_key
from trackflow.domain.track import STEP_NAMES, initial_steps, progress, public_record, queued_s
from trackflow.media.fingerprint import Match, MatchPolicy
from trackflow.settings import Settings, resource_names

TRACK_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "name",
    ["My Song.mp3", "a+b 100%.flac", "🎵 émoji.wav", unicodedata.normalize("NFD", "Beyoncé.mp3")],
)
def test_upload_keys_round_trip_to_their_track(name: str):
    key = upload_key("uploads/", "alice", TRACK_ID, name)
    parsed = parse_upload_key(key, "uploads/")
    assert (parsed.owner, parsed.track_id) == ("alice", TRACK_ID)
    assert parsed.filename == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize(
    "key",
    [
        "other/alice/x/y.mp3",
        "uploads/alice/y.mp3",
        f"uploads/Alice/{TRACK_ID}/y.mp3",
        "uploads/alice/nothex/y.mp3",
        f"uploads/alice/{TRACK_ID}/a/b.mp3",
    ],
)
def test_keys_we_never_issue_are_refused(key: str):
    assert parse_upload_key(key, "uploads/") is None


def test_filenames_cannot_escape_their_folder():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\music\\x.mp3") == "x.mp3"
    assert safe_filename("\x00\x1f") == "upload"
    assert len(safe_filename("é" * 500).encode()) <= 200
    assert media_key("alice", TRACK_ID, "audio/128.mp3") == f"tracks/alice/{TRACK_ID}/audio/128.mp3"


def test_progress_is_weighted_and_complete_only_when_terminal():
    steps = initial_steps()
    assert progress("processing", steps) == 0
    for name in STEP_NAMES[:5]:
        steps[name]["status"] = "succeeded"
    assert 0 < progress("processing", steps) < 100
    for name in STEP_NAMES:
        steps[name]["status"] = "succeeded"
    assert progress("processing", steps) == 99  # all done, not yet marked published
    assert progress("published", steps) == 100


def test_a_step_is_queued_from_its_stage_launch_or_the_step_before_it_in_its_branch():
    track = {
        "stages": {"checks": "2026-01-01T00:00:00.000Z"},
        "steps": {
            "analyse_waveform": {
                "started_at": "2026-01-01T00:00:00.250Z",
                "finished_at": "2026-01-01T00:00:04.000Z",
            },
            "normalise_audio": {"started_at": "2026-01-01T00:00:07.500Z"},
            "transcode_128": {"started_at": "2026-01-01T00:00:09.000Z"},
            "check_copyright": {"status": "pending"},
        },
    }
    assert queued_s(track, "analyse_waveform") == 0.25  # from the stage's launch
    assert queued_s(track, "normalise_audio") == 3.5  # from analyse_waveform's end
    assert queued_s(track, "transcode_128") is None  # its stage was not launched
    assert queued_s(track, "check_copyright") is None  # not started
    with pytest.raises(KeyError):
        queued_s(track, "no_such_step")


def test_public_record_hides_bookkeeping():
    record = public_record(
        {
            "track_id": TRACK_ID,
            "owner": "a",
            "status": "queued",
            "steps": {},
            "upload": {"key": "k"},
            "launch": {},
        }
    )
    assert "upload" not in record and "launch" not in record
    assert list(record["steps"]) == list(STEP_NAMES)


def test_update_expressions_read_in_words():
    u = Update()
    u.set(("steps", "index_track", "status"), "running").increment(
        ("steps", "index_track", "attempts")
    )
    u.remove("error").where(f"{u.path('status')} = {u.value('processing')}")
    kwargs = u.kwargs()
    assert kwargs["UpdateExpression"].startswith("SET #n0.#n1.#n2 = :v0 ADD")
    assert kwargs["ConditionExpression"] == "(#n2 = :v2)"  # one placeholder a name
    assert kwargs["ExpressionAttributeNames"]["#n1"] == "index_track"


def test_items_round_trip_with_floats_and_nonfinite_values():
    item = {"a": 1.5, "b": [1, 2.25], "c": {"d": float("-inf")}, "e": True, "f": None}
    assert from_item(to_item(item)) == {
        "a": 1.5,
        "b": [1, 2.25],
        "c": {"d": None},
        "e": True,
        "f": None,
    }


def _match(work: int, score: int) -> Match:
    return Match(
        work=work,
        score=score,
        upload_offset_s=5.0,
        work_offset_s=65.0,
        matched_s=12.0,
        confidence=min(1.0, score / 20),
    )


def test_verdicts_reject_review_or_pass_and_spare_the_owner():
    works = {
        1: {"work_id": "w00000001", "title": "Hit", "owner": "label"},
        2: {"work_id": "w00000002", "title": "Mine", "owner": "alice"},
    }
    policy = MatchPolicy()
    assert judge(landmark_evidence([_match(1, 40)], policy), works, "alice").outcome == "match"
    assert judge(landmark_evidence([_match(1, 12)], policy), works, "alice").outcome == "review"
    assert judge(landmark_evidence([_match(2, 80)], policy), works, "alice").outcome == "none"
    assert (
        judge(landmark_evidence([_match(3, 80)], policy), works, "alice").outcome == "none"
    )  # removed work
    verdict = judge(landmark_evidence([_match(1, 40)], policy), works, "alice")
    assert (
        "Hit" in verdict.message() and "0:05" in verdict.message() and "1:05" in verdict.message()
    )


def test_a_reference_work_match_names_the_work_and_its_rights_holder():
    """Rejected for a reference work: the message names its title and rights holder."""
    works = {1: {"work_id": "w00000001", "title": "Protected Anthem", "owner": "big-label"}}
    verdict = judge(landmark_evidence([_match(1, 40)], MatchPolicy()), works, "alice")

    assert verdict.outcome == "match"
    assert "'Protected Anthem'" in verdict.message() and "big-label" in verdict.message()
    assert verdict.matches[0]["kind"] == "reference_work"
    assert verdict.matches[0]["rights_holder"] == "big-label"


def test_a_published_track_match_says_nothing_about_who_published_it():
    """Rejected for another user's published track: the message and the recorded match say it
    is already published here, and nothing of its uploader, title or track."""
    works = {
        7: {
            "work_id": "w00000007",
            "title": "Bob's Secret Demo",
            "owner": "bob",
            "track_id": "0f3c2a9e-track-of-bob",
        }
    }
    verdict = judge(landmark_evidence([_match(7, 40)], MatchPolicy()), works, "alice")
    shown = verdict.message() + json.dumps(verdict.as_record())

    assert verdict.outcome == "match"
    assert "matches a track already published on this service" in verdict.message()
    assert verdict.matches[0]["kind"] == "published_track"
    for secret in ("bob", "Secret Demo", "0f3c2a9e", "owned by"):
        assert secret not in shown


def test_a_changed_copy_is_judged_on_the_quads_and_the_record_says_how_it_was_changed():
    """Landmarks miss a copy sped up 4 %; the quads find it, and the verdict says by how much,
    which is what a reviewer and the uploader read."""
    from trackflow.media.invariant import InvariantMatch, InvariantPolicy

    works = {1: {"work_id": "w00000001", "title": "Hit", "owner": "label"}}
    quads = InvariantMatch(1, 120, 0.9, 14, 1.04, 1.04, 2.0, 30.0, 25.0, 1.0)
    weak_landmarks = landmark_evidence([_match(1, 12)], MatchPolicy())
    verdict = judge(weak_landmarks + quad_evidence([quads], InvariantPolicy()), works, "alice")
    assert verdict.outcome == "match"
    assert verdict.matches[0]["method"] == "quads"
    assert verdict.matches[0]["tempo_factor"] == 1.04 == verdict.matches[0]["pitch_factor"]
    assert "sped up 4 %" in verdict.message()


@pytest.mark.parametrize(
    ("tempo", "pitch", "words"),
    [
        (1.0, 1.004, ""),
        (0.95, 0.95, "slowed down 5 %"),
        (1.06, 1.0, "6 % faster"),
        (1.0, 2 ** (-1.5 / 12), "pitched down 1.5 semitones"),
        (0.97, 1.06, "3 % slower and pitched up 1.0 semitones"),
    ],
)
def test_changes_are_put_in_words(tempo, pitch, words):
    assert change_words(tempo, pitch) == words


def test_emails_for_each_outcome_are_escaped_and_say_what_to_do():
    track = {
        "track_id": TRACK_ID,
        "owner": "alice",
        "filename": "x.mp3",
        "metadata": {"tags": {"title": "<script>alert(1)</script>"}},
        "error": {
            "code": "corrupt_audio",
            "message": "the audio stops early",
            "step": "analyse_waveform",
        },
        "renditions": {"128": {}, "320": {}},
        "loudness": {"output": {"integrated_lufs": -14.0, "true_peak_dbtp": -1.2}},
    }
    published = compose("published", track, "https://tracks.example")
    assert "<script>" not in published.html and "&lt;script&gt;" in published.html
    assert "128 kbps, 320 kbps" in published.text
    assert f"https://tracks.example/tracks/{TRACK_ID}" in published.text
    failed = compose("failed", track, "https://tracks.example")
    assert "export the file again" in failed.text and "analyse_waveform" in failed.text
    rejected = compose("rejected", {**track, "error": {"message": "it contains 'Hit'"}}, "x")
    assert "it contains 'Hit'" in rejected.text


def test_tokens_expire_and_cannot_be_forged(tmp_path):
    settings = Settings(data_dir=tmp_path)
    token = mint_token(settings, "alice")
    assert verify_token(settings, token).user_id == "alice"
    forged = jwt.encode(
        {"sub": "bob", "iss": "trackflow", "iat": 1, "exp": time.time() + 60},
        "not-the-secret-" * 4,
        algorithm="HS256",
    )
    with pytest.raises(AuthError):
        verify_token(settings, forged)
    expired = mint_token(settings, "alice", ttl_s=-10)
    with pytest.raises(AuthError):
        verify_token(settings, expired)
    with pytest.raises(AuthError):
        verify_token(settings, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert (tmp_path / "token-secret").stat().st_mode & 0o777 == 0o600
    assert token_secret(settings) == token_secret(settings)


def test_settings_name_everything_from_one_prefix():
    names = resource_names("trackflow-prod")
    assert names["uploads_bucket"] == "trackflow-prod-uploads"
    assert names["cpu_priority_queue"] == "trackflow-prod-cpu-priority"
    settings = Settings(env="prod")
    assert settings.events_queue == "trackflow-prod-events"
    for queue in settings.worker_queues:
        assert (
            settings.visibility_timeouts[queue] > settings.cpu_task_time_limit_s
            or settings.visibility_timeouts[queue] > settings.io_task_time_limit_s
        )
    with pytest.raises(ValueError):
        Settings(retry_backoff_max_s=10_000)


def test_a_reviewer_s_rejection_names_a_work_but_never_another_uploader():
    """Confirming a held match names the reference work and its rights holder; a match on
    another user's published track says only that it is already published here."""
    from trackflow.domain.copyright import review_rejection

    work = [{"kind": "reference_work", "title": "Anthem", "rights_holder": "label"}]
    assert review_rejection(work) == (
        "a reviewer confirmed that the upload contains 'Anthem', whose rights holder is label"
    )
    track = review_rejection([{"kind": "published_track", "work_id": "w1"}], "same master")
    assert track == (
        "a reviewer confirmed that the upload contains a track already published on this "
        "service: same master"
    )
    assert review_rejection([]) == "a reviewer confirmed that the upload contains a protected work"
