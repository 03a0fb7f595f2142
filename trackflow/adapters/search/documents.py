"""What both search backends index and answer: a published track's document and a hit."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any, Protocol

__all__ = ["SearchHit", "SearchIndex", "TrackDocument", "query_terms"]


@dataclass(frozen=True)
class TrackDocument:
    track_id: str
    title: str
    artist: str
    album: str
    genre: str
    uploader: str
    duration_s: float
    published_at: str

    @classmethod
    def from_track(cls, track: Mapping[str, Any]) -> TrackDocument:
        tags = track.get("metadata", {}).get("tags", {})
        return cls(
            track_id=track["track_id"],
            title=tags.get("title") or PurePath(track.get("filename", "")).stem,
            artist=tags.get("artist", ""),
            album=tags.get("album", ""),
            genre=tags.get("genre", ""),
            uploader=track["owner"],
            duration_s=float(track.get("metadata", {}).get("audio", {}).get("duration_s", 0.0)),
            published_at=track.get("published_at") or track.get("updated_at", ""),
        )


@dataclass(frozen=True)
class SearchHit:
    document: TrackDocument
    score: float

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self.document), "score": self.score}


class SearchIndex(Protocol):
    def upsert(self, document: TrackDocument) -> None: ...
    def delete(self, track_id: str) -> None: ...
    def search(
        self, query: str, *, limit: int = 20, offset: int = 0
    ) -> tuple[list[SearchHit], int]:
        """Hits of one page and the total number of hits."""
        ...


_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """Words of a query, folded: lower case, without diacritics."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORD.findall(folded)[:12]
