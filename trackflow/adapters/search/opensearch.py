"""The OpenSearch backend of search, for deployments (opensearch-py).

The index folds case and diacritics (asciifolding) and indexes edge n-grams for prefix matching
as the user types, while queries are analysed whole; documents are keyed by track id, so
re-indexing a track replaces its document.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

from trackflow.adapters.search.documents import SearchHit, TrackDocument
from trackflow.settings import Settings

__all__ = ["INDEX_BODY", "OpenSearchIndex", "query_body"]

FIELDS = ("title^10", "artist^8", "album^4", "genre^2", "uploader^2")

INDEX_BODY: dict[str, Any] = {
    "settings": {
        "analysis": {
            "filter": {"prefixes": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}},
            "analyzer": {
                "folded": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
                "folded_prefixes": {
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "prefixes"],
                },
            },
        }
    },
    "mappings": {
        "properties": {
            **{
                name: {"type": "text", "analyzer": "folded_prefixes", "search_analyzer": "folded"}
                for name in ("title", "artist", "album", "genre", "uploader")
            },
            "track_id": {"type": "keyword"},
            "duration_s": {"type": "float"},
            "published_at": {"type": "date"},
        }
    },
}


def query_body(query: str, limit: int, offset: int) -> dict[str, Any]:
    """All words must match (each by prefix), best fields first, newest on ties."""
    return {
        "query": {
            "multi_match": {
                "query": query,
                "fields": list(FIELDS),
                "operator": "and",
                "type": "cross_fields",
            }
        },
        "sort": ["_score", {"published_at": "desc"}],
        "from": offset,
        "size": limit,
        "track_total_hits": True,
    }


class OpenSearchIndex:
    def __init__(self, settings: Settings, client: Any = None) -> None:
        if client is None:
            from opensearchpy import OpenSearch

            if not settings.opensearch_url:
                raise ValueError("TRACKFLOW_OPENSEARCH_URL is needed for the opensearch backend")
            client = OpenSearch(
                hosts=[settings.opensearch_url], timeout=10, max_retries=3, retry_on_timeout=True
            )
        self._client = client
        self._index = f"{settings.prefix}-tracks"
        if not self._client.indices.exists(index=self._index):
            self._client.indices.create(index=self._index, body=INDEX_BODY)

    def upsert(self, document: TrackDocument) -> None:
        self._client.index(
            index=self._index, id=document.track_id, body=asdict(document), refresh="wait_for"
        )

    def delete(self, track_id: str) -> None:
        from opensearchpy import NotFoundError

        with contextlib.suppress(NotFoundError):  # already gone
            self._client.delete(index=self._index, id=track_id, refresh="wait_for")

    def search(
        self, query: str, *, limit: int = 20, offset: int = 0
    ) -> tuple[list[SearchHit], int]:
        if not query.strip():
            return [], 0
        response = self._client.search(index=self._index, body=query_body(query, limit, offset))
        hits = [
            SearchHit(TrackDocument(**hit["_source"]), score=round(float(hit["_score"] or 0), 4))
            for hit in response["hits"]["hits"]
        ]
        return hits, int(response["hits"]["total"]["value"])
