"""The embedded search backend: SQLite FTS5, one file in the data directory shared by the local
workers and the API."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from trackflow.adapters.search.documents import SearchHit, TrackDocument, query_terms

__all__ = ["SqliteSearch"]


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
