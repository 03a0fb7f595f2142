"""Tags come out of every tag format as the same tidy fields; pictures prefer the front cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.id3 import ID3, TIT2, TPE1, Encoding

from tests.support import audio
from trackflow.media.probe import inspect_audio, open_audio
from trackflow.media.tags import clean_text, front_cover, read_tags


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audio.music(tmp_path_factory.mktemp("tags") / "source.wav", seconds=2.0)


def _load(path: Path):
    return open_audio(path, inspect_audio(path))


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "opus", "m4a", "alac", "wav", "aiff"])
def test_tags_read_alike_from_every_format(fmt: str, source: Path, tmp_path: Path):
    cover = audio.cover()
    path = audio.tag(audio.encode(source, fmt, tmp_path), fmt, cover=cover)
    loaded = _load(path)
    tags = read_tags(loaded, fallback_title="x")
    assert tags["title"] == "Blue Hour"
    assert tags["artist"] == "Beyoncé & the Testers"
    assert tags["album"] == "Ünit Tests"
    assert tags["genre"] == "Electronic"
    assert tags["year"] == 2024
    assert (tags["track_number"], tags["track_total"]) == (3, 12)
    picture = front_cover(loaded)
    assert picture is not None and picture.data == cover and picture.is_front_cover


def test_no_title_falls_back_to_the_file_name(source: Path, tmp_path: Path):
    path = audio.encode(source, "flac", tmp_path)
    assert read_tags(_load(path), fallback_title="my demo take 3")["title"] == "my demo take 3"
    assert front_cover(_load(path)) is None


def test_mojibake_is_repaired_and_text_is_valid_utf8(source: Path, tmp_path: Path):
    """A tagger that wrote UTF-8 bytes as Latin-1 produced 'BeyoncÃ©'; we show 'Beyoncé'."""
    path = audio.encode(source, "mp3", tmp_path)
    id3 = ID3()
    id3.add(TIT2(encoding=Encoding.LATIN1, text="BeyoncÃ©"))
    id3.add(TPE1(encoding=Encoding.UTF8, text="Control\x01chars\x7f gone"))
    id3.save(path, v2_version=3)
    tags = read_tags(_load(path), fallback_title="x")
    assert tags["title"] == "Beyoncé"
    assert tags["artist"] == "Controlchars gone"


def test_id3v1_only_files_are_read(source: Path, tmp_path: Path):
    path = audio.encode(source, "mp3", tmp_path)
    title = b"Old School".ljust(30, b"\0")
    tag = b"TAG" + title + b"Artist V1".ljust(30, b"\0") + b"Album".ljust(30, b"\0") + b"1999"
    tag += b"\0" * 28 + b"\0\x05" + bytes([13])
    with path.open("ab") as handle:
        handle.write(tag)
    tags = read_tags(_load(path), fallback_title="x")
    assert tags["title"] == "Old School"
    assert tags["artist"] == "Artist V1"
    assert tags["year"] == 1999


def test_clean_text_never_raises():
    assert clean_text(b"\xff\xfe broken bytes") == "broken bytes"
    assert clean_text("  ") is None
    assert clean_text(None) is None
    assert len(clean_text("x" * 5000)) == 1000
