"""The copyright verdict: from fingerprint matches and the works they point at, to pass, review
or reject, with words the uploader can act on. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackflow.media.fingerprint import Match, MatchPolicy

__all__ = ["Verdict", "judge"]


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
        return (
            f"the upload contains '{best['title']}' (work {best['work_id']}, owned by "
            f"{best['owner']}): {best['matched_s']:.0f} s matched from "
            f"{_clock(best['upload_offset_s'])} of the upload, at {_clock(best['work_offset_s'])} "
            "of the work"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def judge(
    matches: Sequence[Match],
    works: Mapping[int, Mapping[str, Any]],
    uploader: str,
    policy: MatchPolicy,
) -> Verdict:
    """A confident match of someone else's work rejects; a weak one asks for review; matches of
    the uploader's own works (a re-upload, a published track) never count against them."""
    others: list[dict[str, Any]] = []
    own: list[str] = []
    for match in matches:
        work = works.get(match.work)
        if work is None:  # removed from the catalogue
            continue
        if work["owner"] == uploader:
            own.append(work["work_id"])
            continue
        others.append(
            {
                "work_id": work["work_id"],
                "title": work["title"],
                "owner": work["owner"],
                "upload_offset_s": match.upload_offset_s,
                "work_offset_s": match.work_offset_s,
                "matched_s": match.matched_s,
                "confidence": match.confidence,
                "score": match.score,
                "confident": match.is_confident(policy),
            }
        )
    if any(m["confident"] for m in others):
        outcome = "match"
    elif others:
        outcome = "review"
    else:
        outcome = "none"
    return Verdict(outcome, others, own)
