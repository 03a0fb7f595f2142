"""MP3 renditions: constant bitrate, gapless (LAME header with encoder delay and padding), tagged
ID3v2.4 with the track's tags, front cover and ReplayGain 2.0."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mutagen.id3 import (
    APIC,
    COMM,
    ID3,
    TALB,
    TBPM,
    TCON,
    TDRC,
    TIT2,
    TPE1,
    TPE2,
    TPOS,
    TPUB,
    TRCK,
    TSRC,
    TXXX,
    Encoding,
)
from mutagen.mp3 import MP3

from trackflow.media import ffmpeg
from trackflow.media.tags import MULTI_VALUED

__all__ = ["encode_mp3", "replaygain_tags", "write_id3"]

_TEXT_FRAMES = {
    "title": TIT2,
    "artist": TPE1,
    "album": TALB,
    "album_artist": TPE2,
    "genre": TCON,
    "date": TDRC,
    "isrc": TSRC,
    "label": TPUB,
}


def _encode(
    source: Path,
    out_path: Path,
    *,
    bitrate_kbps: int,
    sample_rate: int,
    joint_stereo: bool,
    limit_dbtp: float | None,
    timeout: float,
) -> None:
    chain = f"aresample={sample_rate}:resampler=soxr"
    if limit_dbtp is not None:
        chain = (
            f"aresample={sample_rate * 4}:resampler=soxr,"
            f"alimiter=limit={10 ** (limit_dbtp / 20):.5f}:attack=2:release=80:level=0:latency=1,"
            + chain
        )
    ffmpeg.run(
        [
            *ffmpeg.input_args(source, "flac"),
            "-map", "0:a:0", "-map_metadata", "-1", "-af", chain,
            "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-ar", str(sample_rate),
            "-joint_stereo", "1" if joint_stereo else "0",
            "-write_xing", "1", "-id3v2_version", "0", "-write_id3v1", "0",
            "-f", "mp3", "-y", str(out_path),
        ],
        timeout=timeout,
    )  # fmt: skip


def measure(path: Path, demuxer: str, timeout: float) -> tuple[ffmpeg.LoudnessStats, float]:
    """Loudness, true peak and duration of a file as a player decodes it."""
    result = ffmpeg.run(
        [*ffmpeg.input_args(path, demuxer), "-map", "0:a:0",
         "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
        timeout=timeout, loglevel="info",
    )  # fmt: skip
    return ffmpeg.parse_ebur128_summary(result.stderr), result.out_time_s


def encode_mp3(
    source: Path,
    out_path: Path,
    *,
    bitrate_kbps: int,
    sample_rate: int,
    source_peak_dbtp: float,
    max_peak_dbtp: float,
    timeout: float,
) -> dict[str, Any]:
    """Encode the normalised FLAC ``source`` to a CBR MP3 whose true peak, as decoded, is at most
    ``max_peak_dbtp``.

    Lossy encoding adds peaks that cannot be predicted, so the result is measured. Most of the
    overshoot seen on noisy material comes from joint (mid/side) stereo coding, so a rendition
    that overshoots is encoded again as plain stereo, which keeps its loudness; only if that
    still overshoots does a limiter, lowered by the overshoot, hold the peaks down. The file
    appears at ``out_path`` only when complete.
    """
    partial = out_path.with_suffix(".partial.mp3")
    joint_stereo, limit = True, None
    for encodes in range(1, 4):
        _encode(
            source,
            partial,
            bitrate_kbps=bitrate_kbps,
            sample_rate=sample_rate,
            joint_stereo=joint_stereo,
            limit_dbtp=limit,
            timeout=timeout,
        )
        loudness, duration = measure(partial, "mp3", timeout)
        overshoot = loudness.true_peak_dbtp - max_peak_dbtp
        if overshoot <= 0 or encodes == 3:
            break
        if joint_stereo:
            joint_stereo = False
        else:
            limit = min(source_peak_dbtp, limit if limit is not None else source_peak_dbtp) - (
                overshoot + 0.2
            )
    info = MP3(partial).info
    assert info is not None  # mutagen raises on a file without MPEG frames
    partial.replace(out_path)
    return {
        "bitrate_kbps": bitrate_kbps,
        "duration_s": round(duration, 4),  # as decoded: the gapless header honoured
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "bytes": out_path.stat().st_size,
        "stereo": "joint" if joint_stereo else "plain",
        "loudness": loudness.as_record(),
        "limited_dbtp": round(limit, 2) if limit is not None else None,
        "encodes": encodes,
    }


REPLAYGAIN_REFERENCE_LUFS = -18.0  # ReplayGain 2.0's reference loudness


def replaygain_tags(loudness: ffmpeg.LoudnessStats) -> dict[str, str]:
    """ReplayGain 2.0 track gain and peak, formatted as rsgain writes them ("-6.50 dB",
    "0.988000"). The peak is the true peak (linear): the ceiling the renditions are held to is
    one. Silence has no gain to state."""
    tags = {}
    if math.isfinite(loudness.integrated_lufs):
        gain = REPLAYGAIN_REFERENCE_LUFS - loudness.integrated_lufs
        tags["REPLAYGAIN_TRACK_GAIN"] = f"{gain:.2f} dB"
    if tags and math.isfinite(loudness.true_peak_dbtp):
        tags["REPLAYGAIN_TRACK_PEAK"] = f"{10 ** (loudness.true_peak_dbtp / 20):.6f}"
    return tags


def write_id3(
    path: Path,
    tags: Mapping[str, Any],
    cover_jpeg: bytes | None,
    *,
    loudness: ffmpeg.LoudnessStats | None = None,
) -> None:
    """Tag the MP3 at ``path`` with ID3v2.4 frames (UTF-8) and the front cover, and with
    ReplayGain 2.0 (TXXX frames named as the tags) from ``loudness``, the rendition's own as
    encode_mp3 measured it."""
    id3 = ID3()
    for field, frame in _TEXT_FRAMES.items():
        # ID3v2.4 holds several values in one frame: players list each artist as its own
        values = tags.get(MULTI_VALUED.get(field, "")) or ([tags[field]] if tags.get(field) else [])
        if values:
            id3.add(frame(encoding=Encoding.UTF8, text=[str(value) for value in values]))
    if tags.get("track_number"):
        total = f"/{tags['track_total']}" if tags.get("track_total") else ""
        id3.add(TRCK(encoding=Encoding.UTF8, text=[f"{tags['track_number']}{total}"]))
    if tags.get("disc_number"):
        total = f"/{tags['disc_total']}" if tags.get("disc_total") else ""
        id3.add(TPOS(encoding=Encoding.UTF8, text=[f"{tags['disc_number']}{total}"]))
    if tags.get("bpm"):
        id3.add(TBPM(encoding=Encoding.UTF8, text=[str(round(tags["bpm"]))]))
    if tags.get("comment"):
        id3.add(COMM(encoding=Encoding.UTF8, lang="eng", desc="", text=[tags["comment"]]))
    if cover_jpeg:
        id3.add(
            APIC(encoding=Encoding.UTF8, mime="image/jpeg", type=3, desc="Cover", data=cover_jpeg)
        )
    for name, value in (replaygain_tags(loudness) if loudness else {}).items():
        id3.add(TXXX(encoding=Encoding.UTF8, desc=name, text=[value]))
    id3.save(path, v2_version=4)
