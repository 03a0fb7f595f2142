"""Search over published tracks, behind one small interface with two backends.

SQLite FTS5 is the embedded default (`sqlite`); OpenSearch serves deployments (`opensearch`).
Both match case- and diacritic-insensitively ("beyonce" finds "Beyoncé"), by prefix as the user
types, ranked, paginated.
"""

from __future__ import annotations

from pathlib import Path

from trackflow.adapters.search.documents import SearchHit, SearchIndex, TrackDocument
from trackflow.adapters.search.opensearch import OpenSearchIndex
from trackflow.adapters.search.sqlite import SqliteSearch
from trackflow.settings import Settings

__all__ = ["SearchHit", "SearchIndex", "SqliteSearch", "TrackDocument", "open_search"]


def open_search(settings: Settings) -> SearchIndex:
    """The search backend the settings choose."""
    if settings.search_backend == "opensearch":
        return OpenSearchIndex(settings)
    return SqliteSearch(Path(settings.data_dir) / "search.sqlite")
