"""Search over published tracks, behind one small interface with two backends.

SQLite FTS5 is the embedded default (one file in the data directory, shared by the local
workers and the API); OpenSearch serves deployments. Both match case- and diacritic-insensitively
("beyonce" finds "Beyoncé"), by prefix as the user types, ranked, paginated.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from typing import Any, Protocol

from trackflow.settings import Settings

__all__ = ["SearchHit", "SearchIndex", "SqliteSearch", "TrackDocument", "open_search"]


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


class SqliteSearch:
    """FTS5 with unicode61 tokens, diacritics removed, prefix indexes and bm25 ranking."""

    _WEIGHTS = "10.0, 8.0, 4.0, 2.0, 2.0"  # title, artist, album, genre, uploader

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as db:
            db.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS tracks USING fts5("
                "title, artist, album, genre, uploader, "
                "track_id UNINDEXED, duration_s UNINDEXED, published_at UNINDEXED, "
                "tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3')"
            )

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def upsert(self, document: TrackDocument) -> None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM tracks WHERE track_id = ?", (document.track_id,))
            db.execute(
                "INSERT INTO tracks (title, artist, album, genre, uploader, track_id, "
                "duration_s, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    document.title,
                    document.artist,
                    document.album,
                    document.genre,
                    document.uploader,
                    document.track_id,
                    document.duration_s,
                    document.published_at,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, track_id: str) -> None:
        self._connection().execute("DELETE FROM tracks WHERE track_id = ?", (track_id,))

    def count(self, track_id: str) -> int:
        row = (
            self._connection()
            .execute("SELECT count(*) FROM tracks WHERE track_id = ?", (track_id,))
            .fetchone()
        )
        return int(row[0])

    def search(
        self, query: str, *, limit: int = 20, offset: int = 0
    ) -> tuple[list[SearchHit], int]:
        terms = query_terms(query)
        if not terms:
            return [], 0
        match = " ".join(f'"{term}"*' for term in terms)
        db = self._connection()
        total = db.execute("SELECT count(*) FROM tracks WHERE tracks MATCH ?", (match,)).fetchone()[
            0
        ]
        rows = db.execute(
            f"SELECT title, artist, album, genre, uploader, track_id, duration_s, published_at, "
            f"bm25(tracks, {self._WEIGHTS}) AS rank FROM tracks WHERE tracks MATCH ? "
            f"ORDER BY rank, published_at DESC LIMIT ? OFFSET ?",
            (match, limit, offset),
        ).fetchall()
        hits = [
            SearchHit(
                TrackDocument(
                    track_id=r[5],
                    title=r[0],
                    artist=r[1],
                    album=r[2],
                    genre=r[3],
                    uploader=r[4],
                    duration_s=float(r[6] or 0),
                    published_at=r[7],
                ),
                score=round(-float(r[8]), 4),
            )
            for r in rows
        ]
        return hits, int(total)


def open_search(settings: Settings) -> SearchIndex:
    """The search backend the settings choose."""
    if settings.search_backend == "opensearch":
        from trackflow.search_opensearch import OpenSearchIndex

        return OpenSearchIndex(settings)
    return SqliteSearch(Path(settings.data_dir) / "search.sqlite")
