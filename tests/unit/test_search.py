"""Search: ranked, by prefix as you type, blind to case and diacritics, paginated, one document
per track."""

from __future__ import annotations

from pathlib import Path

from trackflow.adapters.search import SqliteSearch, TrackDocument


def _doc(track_id: str, title: str, artist: str = "Various", **extra: str) -> TrackDocument:
    return TrackDocument(
        track_id=track_id,
        title=title,
        artist=artist,
        album=extra.get("album", ""),
        genre=extra.get("genre", ""),
        uploader=extra.get("uploader", "u"),
        duration_s=180.0,
        published_at=extra.get("at", "2026-01-01T00:00:00Z"),
    )


def test_diacritics_case_and_prefixes(tmp_path: Path):
    index = SqliteSearch(tmp_path / "s.sqlite")
    index.upsert(_doc("1", "Halo", "Beyoncé"))
    index.upsert(_doc("2", "Crème Brûlée", "Ærøskøbing Band"))
    index.upsert(_doc("3", "Something Else", "Nobody"))
    assert [h.document.track_id for h in index.search("beyonce")[0]] == ["1"]
    assert [h.document.track_id for h in index.search("BEYON")[0]] == ["1"]
    assert [h.document.track_id for h in index.search("creme brul")[0]] == ["2"]
    assert [h.document.track_id for h in index.search("Ærø")[0]] == ["2"]
    assert index.search("")[0] == [] and index.search("\"'*")[0] == []


def test_title_outranks_album_and_pages_do_not_overlap(tmp_path: Path):
    index = SqliteSearch(tmp_path / "s.sqlite")
    index.upsert(_doc("album", "Other", album="Sunrise"))
    index.upsert(_doc("title", "Sunrise"))
    hits, total = index.search("sunrise")
    assert [h.document.track_id for h in hits] == ["title", "album"] and total == 2
    for n in range(25):
        index.upsert(_doc(f"n{n}", f"Night Drive {n}"))
    first, total = index.search("night", limit=10)
    second, _ = index.search("night", limit=10, offset=10)
    assert total == 25
    assert not {h.document.track_id for h in first} & {h.document.track_id for h in second}


def test_reindexing_replaces_and_delete_removes(tmp_path: Path):
    index = SqliteSearch(tmp_path / "s.sqlite")
    index.upsert(_doc("1", "Draft Title"))
    index.upsert(_doc("1", "Final Title"))
    assert index.count("1") == 1
    assert index.search("draft")[0] == []
    index.delete("1")
    assert index.search("final")[0] == []
