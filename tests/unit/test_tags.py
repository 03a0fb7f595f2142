"""Tags come out of every tag format as the same tidy fields; pictures prefer the front cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, TIT2, TPE1, Encoding
from mutagen.mp4 import MP4
from mutagen.oggvorbis import OggVorbis

from tests.support import audio
from trackflow.media.probe import inspect_audio, open_audio
from trackflow.media.tags import clean_text, clean_values, display, front_cover, read_tags


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


def _two_artists(path: Path, fmt: str) -> Path:
    """Tag ``path`` with two artists and two genres the way its format holds several values."""
    if fmt == "mp3":
        id3 = ID3()
        id3.add(TPE1(encoding=Encoding.UTF8, text=["piman", "jzig"]))
        id3.add(TCON(encoding=Encoding.UTF8, text=["Electronic", "Ambient"]))
        id3.save(path, v2_version=4)
    elif fmt in ("flac", "ogg"):
        vorbis = FLAC(path) if fmt == "flac" else OggVorbis(path)
        vorbis["ARTIST"] = ["piman", "jzig"]  # two ARTIST comments
        vorbis["GENRE"] = ["Electronic", "Ambient"]
        vorbis.save()
    else:
        mp4 = MP4(path)
        mp4["\xa9ART"] = ["piman", "jzig"]
        mp4["\xa9gen"] = ["Electronic", "Ambient"]
        mp4.save()
    return path


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "m4a"])
def test_several_artists_are_kept_as_a_list_and_shown_joined(
    fmt: str, source: Path, tmp_path: Path
):
    """Two artists (and genres) stay two, in order; the single field is their display string."""
    path = _two_artists(audio.encode(source, fmt, tmp_path), fmt)
    tags = read_tags(_load(path), fallback_title="x")
    assert tags["artists"] == ["piman", "jzig"]
    assert tags["artist"] == "piman, jzig"
    assert tags["genres"] == ["Electronic", "Ambient"]
    assert tags["genre"] == "Electronic, Ambient"


def test_one_artist_is_a_list_of_one_and_the_same_string(source: Path, tmp_path: Path):
    """A single artist reads as before, with a list of one beside it."""
    path = audio.tag(audio.encode(source, "flac", tmp_path), "flac")
    tags = read_tags(_load(path), fallback_title="x")
    assert tags["artist"] == "Beyoncé & the Testers"
    assert tags["artists"] == ["Beyoncé & the Testers"]
    assert "album_artists" not in tags  # no value, no list


def test_repeated_and_empty_values_are_dropped():
    """Duplicates and blanks leave the list; the display joins what is left."""
    assert clean_values(["piman", " ", "piman", None, "jzig\x00"]) == ["piman", "jzig"]
    assert display(["piman", "jzig"]) == "piman, jzig"
    assert display([]) is None
