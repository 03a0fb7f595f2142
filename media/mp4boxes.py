"""Just enough ISO BMFF to read and fix the init segment of a one-track fragmented MP4.

An audio encoder emits priming samples (encoder delay) before the first real one: 1024 for
ffmpeg's AAC, the Opus header's pre-skip (312 for libopus) for Opus. In MP4 the edit list
(moov/trak/edts/elst) tells a player to skip them and where the track ends: ISO/IEC 14496-12
§8.6.6 (https://www.iso.org/standard/83102.html), and for Opus its §4.4 "Edit list and
timestamps" (https://opus-codec.org/docs/opus_in_isobmff.html): media_time = the priming
samples, segment_duration = the valid samples, in the movie's timescale.

The init segment holds no samples (its stco/stsz are empty), so rewriting moov, whose size
changes when an edts box is inserted, moves no sample data: nothing needs an offset fixed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["InitSegment", "read_init", "set_edit_list"]


@dataclass(frozen=True)
class InitSegment:
    movie_timescale: int  # mvhd: the unit of an edit's segment_duration
    media_timescale: int  # mdhd: the unit of media_time (the sample rate, for audio)
    sample_entry: str  # stsd's first entry: "mp4a", "Opus"
    pre_skip: int | None  # dOps PreSkip, for Opus
    edits: tuple[tuple[int, int], ...]  # elst (segment_duration, media_time) entries


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box in ``data[start:end]``."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, start + 8)
            header = 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - start
        if size < header or start + size > end:
            raise ValueError(f"malformed MP4 box {kind!r} at {start}")
        yield kind, start, start + header, start + size
        start += size


def _find(data: bytes, *path: bytes) -> tuple[int, int]:
    """Payload bounds of the first box at ``path`` (each level's first match)."""
    start, end = 0, len(data)
    for kind in path:
        for found, _, payload, box_end in _children(data, start, end):
            if found == kind:
                start, end = payload, box_end
                break
        else:
            raise ValueError(f"no {b'/'.join(path).decode()} box in the init segment")
    return start, end


def _timescale(data: bytes, *path: bytes) -> int:
    """mvhd's or mdhd's timescale (version 1 has 64-bit times before it)."""
    start, _ = _find(data, *path)
    return int(struct.unpack_from(">I", data, start + (20 if data[start] == 1 else 12))[0])


def read_init(data: bytes) -> InitSegment:
    movie = _timescale(data, b"moov", b"mvhd")
    media = _timescale(data, b"moov", b"trak", b"mdia", b"mdhd")
    stsd, stsd_end = _find(data, b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    # stsd: version/flags, entry count, then sample entries; an audio sample entry has 28
    # bytes of fields before its child boxes (§12.2.3)
    (kind, _, entry_payload, entry_end), *_ = _children(data, stsd + 8, stsd_end)
    pre_skip = None
    for child, _, payload, _ in _children(data, entry_payload + 28, entry_end):
        if child == b"dOps":  # Version, OutputChannelCount, PreSkip, ...
            pre_skip = struct.unpack_from(">H", data, payload + 2)[0]
    edits: list[tuple[int, int]] = []
    try:
        start, _ = _find(data, b"moov", b"trak", b"edts", b"elst")
    except ValueError:
        start = -1
    if start >= 0:
        version = data[start]
        (count,) = struct.unpack_from(">I", data, start + 4)
        layout, width = (">Qq", 20) if version == 1 else (">Ii", 12)
        edits = [struct.unpack_from(layout, data, start + 8 + n * width)[:2] for n in range(count)]
    return InitSegment(movie, media, kind.decode("latin-1"), pre_skip, tuple(edits))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _edts(media_time: int, segment_duration: int) -> bytes:
    """One edit: play ``segment_duration`` (movie timescale) from ``media_time`` (media
    timescale) at rate 1.0. Version 1 (64-bit fields) only when a value needs it."""
    if segment_duration < 2**32 and media_time < 2**31:
        elst = struct.pack(">BxxxIIiHH", 0, 1, segment_duration, media_time, 1, 0)
    else:
        elst = struct.pack(">BxxxIQqHH", 1, 1, segment_duration, media_time, 1, 0)
    return _box(b"edts", _box(b"elst", elst))


def _rebuild(data: bytes, start: int, end: int, path: tuple[bytes, ...], edts: bytes) -> bytes:
    """The boxes in ``data[start:end]``, the one at ``path`` rebuilt; at the end of the path
    (the trak's children), any edts is dropped and ``edts`` placed right after tkhd."""
    out = bytearray()
    for kind, box_start, payload, box_end in _children(data, start, end):
        if not path:
            if kind != b"edts":
                out += data[box_start:box_end]
            if kind == b"tkhd":
                out += edts
        elif kind == path[0]:
            out += _box(kind, _rebuild(data, payload, box_end, path[1:], edts))
        else:
            out += data[box_start:box_end]
    return bytes(out)


def set_edit_list(data: bytes, *, media_time: int, segment_duration: int) -> bytes:
    """The init segment ``data`` with its one track's edit list replaced by (or, where it had
    none, given) a single edit from ``media_time`` lasting ``segment_duration``."""
    if media_time < 0 or segment_duration < 0:
        raise ValueError("an edit starts and lasts a non-negative time")
    return _rebuild(data, 0, len(data), (b"moov", b"trak"), _edts(media_time, segment_duration))
