"""The copyright verdict: from fingerprint matches and the works they point at, to pass, review
or reject, with words the uploader can act on. Pure.

A match is of one of two kinds. A reference work (registered by an administrator for a rights
holder) is named with its title and rights holder: that is what the uploader must clear. Another
user's published track (it joined the catalogue when it was published, and its work carries its
``track_id``) is not: the uploader learns that the audio is already published here, never by
whom, under what title or in which track, which would tell them who uploaded what.

Evidence comes from two fingerprints: landmarks (exact copies and excerpts) and quads (the same
after a change of tempo, pitch or speed, whose factors the record keeps so that a reviewer reads
"sped up 4 %"). Each work is judged on its stronger evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackflow.media.fingerprint import Match, MatchPolicy
from trackflow.media.invariant import InvariantMatch, InvariantPolicy

__all__ = [
    "PUBLISHED_TRACK",
    "REFERENCE_WORK",
    "Evidence",
    "Verdict",
    "change_words",
    "judge",
    "landmark_evidence",
    "quad_evidence",
    "review_rejection",
]

REFERENCE_WORK = "reference_work"
PUBLISHED_TRACK = "published_track"


@dataclass(frozen=True)
class Evidence:
    """One work found in the upload, by one of the fingerprints."""

    work: int
    method: str  # landmarks | quads
    confident: bool  # strong enough to reject on
    score: int
    confidence: float  # 0..1, reaching 1 at the confident threshold
    upload_offset_s: float
    work_offset_s: float
    matched_s: float
    tempo_factor: float = 1.0  # > 1: the upload plays the work faster
    pitch_factor: float = 1.0  # > 1: the upload sounds higher


def landmark_evidence(matches: Sequence[Match], policy: MatchPolicy) -> list[Evidence]:
    return [_evidence(m, "landmarks", m.is_confident(policy)) for m in matches]


def quad_evidence(matches: Sequence[InvariantMatch], policy: InvariantPolicy) -> list[Evidence]:
    return [_evidence(m, "quads", m.is_confident(policy)) for m in matches]


def _evidence(match: Match | InvariantMatch, method: str, confident: bool) -> Evidence:
    return Evidence(
        match.work,
        method,
        confident,
        match.score,
        match.confidence,
        match.upload_offset_s,
        match.work_offset_s,
        match.matched_s,
        # landmarks only match a copy whose tempo and pitch are the work's
        getattr(match, "tempo_factor", 1.0),
        getattr(match, "pitch_factor", 1.0),
    )


def change_words(tempo_factor: float, pitch_factor: float) -> str:
    """How the upload changed the work, in words ("sped up 4 %"), or "" if it did not (changes
    under 1 % are within what the factors are measured to)."""
    tempo, pitch = tempo_factor - 1, pitch_factor - 1
    if abs(tempo) < 0.01 and abs(pitch) < 0.01:
        return ""
    if abs(tempo_factor / pitch_factor - 1) < 0.01:  # both by one factor: played at another speed
        return f"{'sped up' if tempo > 0 else 'slowed down'} {abs(tempo) * 100:.0f} %"
    words = []
    if abs(tempo) >= 0.01:
        words.append(f"{abs(tempo) * 100:.0f} % {'faster' if tempo > 0 else 'slower'}")
    if abs(pitch) >= 0.01:
        semitones = 12 * math.log2(pitch_factor)
        words.append(f"pitched {'up' if semitones > 0 else 'down'} {abs(semitones):.1f} semitones")
    return " and ".join(words)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # none | review | match
    matches: list[dict[str, Any]] = field(default_factory=list)
    own_works: list[str] = field(default_factory=list)  # the uploader's own works it matched

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"result": self.outcome, "matches": self.matches}
        if self.own_works:
            record["own_works"] = self.own_works
        return record

    def message(self) -> str:
        if not self.matches:
            return "no protected work was found in the upload"
        best = self.matches[0]
        changed = f", {best['change']}" if best.get("change") else ""
        if best["kind"] == PUBLISHED_TRACK:
            return (
                f"the upload matches a track already published on this service{changed}: "
                f"{best['matched_s']:.0f} s matched from {_clock(best['upload_offset_s'])} of the "
                "upload"
            )
        return (
            f"the upload contains '{best['title']}', whose rights holder is "
            f"{best['rights_holder']}{changed}: {best['matched_s']:.0f} s matched from "
            f"{_clock(best['upload_offset_s'])} of the upload, at {_clock(best['work_offset_s'])} "
            "of the work"
        )


def review_rejection(matches: Sequence[Mapping[str, Any]], note: str = "") -> str:
    """What the uploader reads when a reviewer confirms a held match: the reference work by
    title and rights holder, another user's published track by nothing that tells who."""
    best = matches[0] if matches else {}
    if best.get("kind") == REFERENCE_WORK or best.get("title"):
        holder = best.get("rights_holder", best.get("owner"))
        what = f"'{best['title']}', whose rights holder is {holder}"
    elif best.get("kind") == PUBLISHED_TRACK:
        what = "a track already published on this service"
    else:
        what = "a protected work"
    return f"a reviewer confirmed that the upload contains {what}" + (f": {note}" if note else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _who(work: Mapping[str, Any]) -> dict[str, Any]:
    """What a match may say about the work it matched: for a reference work its title and rights
    holder, for a published track nothing (the record is shown to the uploader)."""
    if work.get("track_id"):
        return {"kind": PUBLISHED_TRACK}
    return {
        "kind": REFERENCE_WORK,
        "title": work["title"],
        "rights_holder": work["owner"],
        "owner": work["owner"],  # the same, under the name earlier records used
    }


def judge(
    evidence: Sequence[Evidence], works: Mapping[int, Mapping[str, Any]], uploader: str
) -> Verdict:
    """A confident match of someone else's work rejects; a weak one asks for review; matches of
    the uploader's own works (a re-upload, a published track) never count against them. Each
    work is judged on its strongest evidence (confident first, then the most confident; the
    landmarks' on a tie, as an exact copy)."""
    best: dict[int, Evidence] = {}
    for item in sorted(
        evidence, key=lambda e: (not e.confident, -e.confidence, e.method != "landmarks")
    ):
        best.setdefault(item.work, item)
    others: list[dict[str, Any]] = []
    own: list[str] = []
    for match in best.values():
        work = works.get(match.work)
        if work is None:  # removed from the catalogue
            continue
        if work["owner"] == uploader:
            own.append(work["work_id"])
            continue
        others.append(
            {
                "work_id": work["work_id"],
                **_who(work),
                "method": match.method,
                "upload_offset_s": match.upload_offset_s,
                "work_offset_s": match.work_offset_s,
                "matched_s": match.matched_s,
                "tempo_factor": match.tempo_factor,
                "pitch_factor": match.pitch_factor,
                "change": change_words(match.tempo_factor, match.pitch_factor),
                "confidence": match.confidence,
                "score": match.score,
                "confident": match.confident,
            }
        )
    if any(m["confident"] for m in others):
        outcome = "match"
    elif others:
        outcome = "review"
    else:
        outcome = "none"
    return Verdict(outcome, others, own)
