"""Tags and embedded pictures, read with mutagen from ID3 (v1, v2.2-2.4, also inside WAV/AIFF),
Vorbis comments (FLAC, Ogg Vorbis, Opus) and MP4 atoms.

Text comes out as valid UTF-8 whatever the file did (mojibake repaired by ftfy); a frame that
cannot be read loses that field only.

Artist, album artist and genre may hold several values (ID3v2.4 frames of several strings,
repeated Vorbis comments, MP4 atoms of several items). They are kept as lists (``artists``,
``album_artists``, ``genres``), and the single field (``artist``...) stays one display string,
so that whatever reads a string reads one: the values joined with ", ", as Spotify, Deezer and
YouTube Music list a track's artists (Apple Music's "A & B" reads well only in English).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ftfy
import mutagen
from mutagen.flac import Picture
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Cover, MP4Tags

from trackflow.logs import get_logger

__all__ = [
    "FIELDS",
    "MULTI_VALUED",
    "EmbeddedPicture",
    "clean_text",
    "clean_values",
    "display",
    "front_cover",
    "read_tags",
]

log = get_logger(__name__)

FIELDS = (
    "title",
    "artist",
    "album",
    "album_artist",
    "track_number",
    "track_total",
    "disc_number",
    "disc_total",
    "date",
    "year",
    "genre",
    "isrc",
    "label",
    "bpm",
    "comment",
    "artists",
    "album_artists",
    "genres",
)

# field -> the list that keeps all of its values
MULTI_VALUED = {"artist": "artists", "album_artist": "album_artists", "genre": "genres"}
DISPLAY_SEPARATOR = ", "
MAX_VALUES = 20  # a tag is not a credits list; this bounds what one track adds to its record

_ID3_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "album_artist": "TPE2",
    "track": "TRCK",
    "disc": "TPOS",
    "date": "TDRC",
    "genre": "TCON",
    "isrc": "TSRC",
    "label": "TPUB",
    "bpm": "TBPM",
}
_VORBIS_KEYS = {
    "title": ["title"],
    "artist": ["artist"],
    "album": ["album"],
    "album_artist": ["albumartist", "album artist", "album_artist"],
    "track": ["tracknumber"],
    "track_total": ["tracktotal", "totaltracks"],
    "disc": ["discnumber"],
    "disc_total": ["disctotal", "totaldiscs"],
    "date": ["date", "year"],
    "genre": ["genre"],
    "isrc": ["isrc"],
    "label": ["label", "organization", "publisher"],
    "bpm": ["bpm"],
    "comment": ["comment", "description"],
}
_MP4_KEYS = {
    "title": "\xa9nam",
    "artist": "\xa9ART",
    "album": "\xa9alb",
    "album_artist": "aART",
    "date": "\xa9day",
    "genre": "\xa9gen",
    "comment": "\xa9cmt",
    "bpm": "tmpo",
    "isrc": "----:com.apple.iTunes:ISRC",
    "label": "----:com.apple.iTunes:LABEL",
}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TEXT = 1000


def clean_text(value: Any) -> str | None:
    """Any tag value as tidy UTF-8 text, or None when nothing readable is left."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = ftfy.fix_text(str(value))
    text = _CONTROL.sub("", text).replace("\ufffd", "").strip()
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:MAX_TEXT] or None


def clean_values(value: Any) -> list[str]:
    """Every readable value of a field, cleaned, in order, each once."""
    values = value if isinstance(value, list | tuple) else [value]
    cleaned: list[str] = []
    for item in values:
        text = clean_text(item)
        if text and text not in cleaned:
            cleaned.append(text)
    return cleaned[:MAX_VALUES]


def display(values: list[str]) -> str | None:
    """Several values as one line to show: 'piman, jzig'."""
    return clean_text(DISPLAY_SEPARATOR.join(values)) if values else None


def _number_pair(value: str | None) -> tuple[int | None, int | None]:
    """'3/12' -> (3, 12); '3' -> (3, None)."""
    if not value:
        return None, None
    match = re.match(r"\s*(\d+)\s*(?:/\s*(\d+))?", value)
    if not match:
        return None, None
    return int(match[1]), int(match[2]) if match[2] else None


def _year(date: str | None) -> int | None:
    match = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", date or "")
    return int(match[1]) if match else None


def _bpm(value: str | None) -> float | None:
    try:
        bpm = float(str(value).replace(",", "."))
    except (TypeError, ValueError):
        return None
    return round(bpm, 2) if 0 < bpm < 1000 else None


def _safe(read: Callable[[], Any], field: str) -> Any:
    """One field's value, or None when its frame is malformed: a bad frame loses only itself."""
    try:
        return read()
    except Exception as exc:  # malformed frames raise whatever their parser raises
        log.warning("tag_field_unreadable", field=field, error=str(exc))
        return None


def _from_id3(tags: ID3) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for field, frame_id in _ID3_FRAMES.items():

        def read(frame_id: str = frame_id, field: str = field) -> Any:
            frame = tags.get(frame_id)
            if frame is None:
                return None
            if frame_id == "TCON":
                return [str(genre) for genre in frame.genres]
            if field in MULTI_VALUED:
                return [str(text) for text in frame.text]
            return str(frame.text[0]) if frame.text else None

        raw[field] = _safe(read, field)
    if raw.get("date") is None:  # ID3v2.3 and v1: TYER
        raw["date"] = _safe(lambda: str(tags["TYER"].text[0]) if "TYER" in tags else None, "date")
    comments = _safe(lambda: [c for c in tags.getall("COMM") if c.text], "comment") or []
    preferred = [c for c in comments if not c.desc] or comments
    raw["comment"] = str(preferred[0].text[0]) if preferred else None
    if raw.get("label") is None:
        raw["label"] = _safe(
            lambda: next(
                (str(f.text[0]) for f in tags.getall("TXXX") if f.desc.upper() == "LABEL"), None
            ),
            "label",
        )
    return raw


def _from_vorbis(tags: Mapping[str, list[str]]) -> dict[str, Any]:
    lowered: dict[str, list[str]] = {}
    for key, values in _safe(lambda: list(tags.items()), "vorbis") or []:
        lowered.setdefault(key.lower(), []).extend(values)
    raw: dict[str, Any] = {}
    for field, keys in _VORBIS_KEYS.items():
        values = next((lowered[k] for k in keys if lowered.get(k)), None)
        raw[field] = (values if field in MULTI_VALUED else values[0]) if values else None
    return raw


def _from_mp4(tags: MP4Tags) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for field, key in _MP4_KEYS.items():

        def read(key: str = key, field: str = field) -> Any:
            values = tags.get(key)
            if not values:
                return None
            texts = [
                bytes(value).decode("utf-8", "replace") if isinstance(value, bytes) else value
                for value in values
            ]
            return texts if field in MULTI_VALUED else texts[0]

        raw[field] = _safe(read, field)
    for field, key in (("track", "trkn"), ("disc", "disk")):
        pair = _safe(lambda key=key: tags.get(key, [None])[0], field)  # type: ignore[misc]
        if pair:
            raw[field] = f"{pair[0]}/{pair[1]}" if len(pair) > 1 and pair[1] else str(pair[0])
    return raw


def _raw_tags(audio: mutagen.FileType) -> dict[str, Any]:
    tags = audio.tags
    if tags is None:
        return {}
    if isinstance(tags, ID3):
        return _from_id3(tags)
    if isinstance(tags, MP4Tags):
        return _from_mp4(tags)
    return _from_vorbis(tags)


def read_tags(audio: mutagen.FileType, *, fallback_title: str) -> dict[str, Any]:
    """The track's tags as plain fields; no title -> ``fallback_title``. A field of several
    values is also kept whole as a list (``artists``), its single field their display string."""
    raw = _raw_tags(audio)
    multi = {field: clean_values(raw.get(field)) for field in MULTI_VALUED}
    track, track_total = _number_pair(clean_text(raw.get("track")))
    disc, disc_total = _number_pair(clean_text(raw.get("disc")))
    date = clean_text(raw.get("date"))
    tags: dict[str, Any] = {
        "title": clean_text(raw.get("title")) or clean_text(fallback_title),
        "artist": display(multi["artist"]),
        "album": clean_text(raw.get("album")),
        "album_artist": display(multi["album_artist"]),
        "track_number": track,
        "track_total": track_total or _number_pair(clean_text(raw.get("track_total")))[0],
        "disc_number": disc,
        "disc_total": disc_total or _number_pair(clean_text(raw.get("disc_total")))[0],
        "date": date,
        "year": _year(date),
        "genre": display(multi["genre"]),
        "isrc": _isrc(clean_text(raw.get("isrc"))),
        "label": clean_text(raw.get("label")),
        "bpm": _bpm(raw.get("bpm")),
        "comment": clean_text(raw.get("comment")),
        **{many: multi[field] for field, many in MULTI_VALUED.items()},
    }
    return {k: v for k, v in tags.items() if v is not None and v != []}


def _isrc(value: str | None) -> str | None:
    if not value:
        return None
    compact = re.sub(r"[\s-]", "", value).upper()
    return compact if re.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}\d{7}", compact) else value


@dataclass(frozen=True)
class EmbeddedPicture:
    data: bytes
    mime: str
    picture_type: int  # ID3/FLAC picture type; 3 is the front cover

    @property
    def is_front_cover(self) -> bool:
        return self.picture_type == 3


def _pictures(audio: mutagen.FileType) -> Iterable[EmbeddedPicture]:
    tags = audio.tags
    if isinstance(tags, ID3):
        for frame in tags.getall("APIC"):
            yield EmbeddedPicture(bytes(frame.data), frame.mime, int(frame.type))
    elif isinstance(tags, MP4Tags):
        for cover in tags.get("covr", []):
            mime = "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
            yield EmbeddedPicture(bytes(cover), mime, 3)
    else:
        for picture in getattr(audio, "pictures", []):  # FLAC
            yield EmbeddedPicture(picture.data, picture.mime, int(picture.type))
        encoded_pictures: list[str] = (tags or {}).get("metadata_block_picture", []) if tags else []
        for encoded in encoded_pictures:
            picture = _safe(lambda e=encoded: Picture(base64.b64decode(e)), "picture")  # type: ignore[misc]
            if picture:
                yield EmbeddedPicture(picture.data, picture.mime, int(picture.type))


def front_cover(audio: mutagen.FileType) -> EmbeddedPicture | None:
    """The front cover if there is one, else the first picture, else None."""
    pictures = [p for p in _safe(lambda: list(_pictures(audio)), "pictures") or [] if p.data]
    return next((p for p in pictures if p.is_front_cover), pictures[0] if pictures else None)
