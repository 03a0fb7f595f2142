"""The streaming ladder: HLS with fragmented-MP4 (CMAF) segments, AAC-LC and Opus, from the
normalised master in one ffmpeg run; the loudness a player needs; playlists rewritten for
private playback.

ffmpeg's hls muxer writes the segments and playlists; what it gets wrong for audio is fixed
after it (see ../shared/notes/streaming.md for the facts checked):
- priming: with its default ``avoid_negative_ts``, the hls muxer shifts every variant by the
  most negative start among them, which zeroes the AAC edit lists (priming then plays) and puts
  an empty edit before Opus. With the shift disabled each variant's own muxer writes
  media_time = priming; the edit list is then rewritten with the track's exact length
  (mp4boxes.set_edit_list), and EXTINF says what plays: the first segment less the priming;
- EXT-X-INDEPENDENT-SEGMENTS, written by ffmpeg only for video, is added (every AAC and Opus
  frame is a sync sample);
- init segments are renamed ``init.mp4`` in each variant's folder, segments numbered from 1;
- BANDWIDTH and AVERAGE-BANDWIDTH are computed from the segments as they play.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutagen.flac import FLAC
from mutagen.mp4 import MP4, MP4FreeForm

from trackflow.media import ffmpeg, mp4boxes
from trackflow.media.transcode import replaygain_tags

__all__ = [
    "LADDER",
    "Variant",
    "encode_ladder",
    "playback_loudness",
    "r128_track_gain",
    "rewrite_master_playlist",
    "rewrite_media_playlist",
]

MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
SEGMENT_PATTERN = "seg_%05d.m4s"
# Apple's HLS Authoring Specification §10.4 (IANA's types for playlists and ISO segments; the
# init segment of audio-only fMP4 is audio/mp4)
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "audio/mp4",
    ".m4s": "video/iso.segment",
}
AAC_PRIMING = 1024  # ffmpeg's native AAC encoder's initial padding: one frame
R128_REFERENCE_LUFS = -23.0  # RFC 7845 §5.2.1


@dataclass(frozen=True)
class Variant:
    """One rung of the ladder: its folder name, codec ("aac" is AAC-LC, or "opus"), bitrate,
    and sample rate (None: the master's)."""

    name: str
    codec: str
    bitrate_kbps: int
    sample_rate: int | None = None

    @property
    def codecs(self) -> str:
        # RFC 6381 names for CODECS. Opus's sample entry is 'Opus', but Chrome and Firefox long
        # accepted only lowercase "opus" (hls.js #4527) and hls.js tries both; Safari, which
        # took only "Opus", is not sent Opus by Apple's spec anyway (it plays the AAC rungs).
        return {"aac": "mp4a.40.2", "opus": "opus"}[self.codec]

    def encoder_args(self, index: int) -> list[str]:
        args = [f"-c:a:{index}", {"aac": "aac", "opus": "libopus"}[self.codec]]
        args += [f"-b:a:{index}", f"{self.bitrate_kbps}k"]
        if self.codec == "opus":
            # libopus's unconstrained VBR ran to 140 kbps at "96k" on dense music; constrained
            # VBR keeps each rung near its BANDWIDTH, as a ladder needs
            args += [f"-vbr:a:{index}", "constrained"]
        return args


LADDER = (
    Variant("aac160", "aac", 160),
    Variant("aac96", "aac", 96),
    Variant("opus96", "opus", 96, 48_000),  # libopus works at 48 kHz: resampled here, with soxr
)


def _ffmpeg_args(
    master: Path, staging: Path, variants: Sequence[Variant], rate: int, segment_seconds: float
) -> list[str]:
    """One decode of the master, split to every variant's encoder, into the hls muxer."""
    labels = [f"s{n}" for n in range(len(variants))]
    graph = [f"[0:a:0]asplit={len(variants)}{''.join(f'[{label}]' for label in labels)}"]
    maps: list[str] = []
    for n, variant in enumerate(variants):
        if variant.sample_rate and variant.sample_rate != rate:
            graph.append(f"[s{n}]aresample={variant.sample_rate}:resampler=soxr[r{n}]")
            labels[n] = f"r{n}"
        maps += ["-map", f"[{labels[n]}]", *variant.encoder_args(n)]
    stream_map = " ".join(f"a:{n},name:{v.name}" for n, v in enumerate(variants))
    return [
        *ffmpeg.input_args(master, "flac"),
        "-filter_complex", ";".join(graph), *maps,
        "-map_metadata", "-1",
        # keep each variant's own negative start (its priming): each variant's MP4 muxer then
        # writes it as the edit's media_time, instead of the hls muxer shifting all of them
        "-avoid_negative_ts", "disabled",
        "-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", INIT_SEGMENT,
        "-start_number", "1", "-hls_segment_filename", str(staging / "%v" / SEGMENT_PATTERN),
        "-master_pl_name", MASTER_PLAYLIST, "-var_stream_map", stream_map,
        str(staging / "%v" / MEDIA_PLAYLIST),
    ]  # fmt: skip


def _segments(playlist: str) -> list[tuple[float, str]]:
    """(EXTINF duration, URI) of each segment of a media playlist ffmpeg wrote."""
    out, duration = [], None
    for line in playlist.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            out.append((duration, line))
            duration = None
    return out


def _rounded(seconds: float) -> int:
    return math.floor(seconds + 0.5)  # RFC 8216 §4.3.3.1: "rounded to the nearest integer"


def _media_playlist(segments: Sequence[tuple[float, str]]) -> str:
    target = max([1, *(_rounded(duration) for duration, _ in segments)])
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{INIT_SEGMENT}"',
    ]
    for duration, uri in segments:
        lines += [f"#EXTINF:{duration:.6f},", uri]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def r128_track_gain(integrated_lufs: float) -> str:
    """RFC 7845 §5.2.1 R128_TRACK_GAIN: the gain to -23 LUFS in Q7.8 (dB x 256), as decimal."""
    return str(max(-32768, min(32767, round((R128_REFERENCE_LUFS - integrated_lufs) * 256))))


def _loudness_tags(codec: str, loudness: ffmpeg.LoudnessStats) -> dict[str, str]:
    """What an init segment carries, as iTunes freeform atoms ('----:com.apple.iTunes:NAME').

    AAC gets ReplayGain 2.0, as MP4 files tagged by rsgain or foobar2000 do. Opus gets
    R128_TRACK_GAIN only (RFC 7845 §5.2.1: an Opus stream SHOULD NOT carry REPLAYGAIN_*). Where:
    in Ogg it would be a comment in OpusTags, which Opus-in-ISOBMFF does not carry; the other
    field the spec gives, dOps OutputGain, is applied by every decoder, so it would move the
    rendition off its -14 LUFS (and R128_TRACK_GAIN is relative to it: it stays 0). The MP4
    container's own tag list is what remains, read by ffmpeg (as the R128_TRACK_GAIN key),
    mutagen and TagLib alike.
    """
    if not math.isfinite(loudness.integrated_lufs):
        return {}  # silence: no gain to state
    if codec == "opus":
        return {"R128_TRACK_GAIN": r128_track_gain(loudness.integrated_lufs)}
    return replaygain_tags(loudness)


def _tag_init(path: Path, tags: dict[str, str]) -> None:
    if not tags:
        return
    mp4 = MP4(path)  # mutagen reads and writes an init segment's moov/udta/meta/ilst as any MP4's
    for name, value in tags.items():
        mp4[f"----:com.apple.iTunes:{name}"] = [MP4FreeForm(value.encode())]
    mp4.save(padding=lambda _: 0)  # no 'free' box: the init segment is fetched on every play


def _bandwidths(
    segments: Sequence[tuple[float, str]], sizes: Sequence[int], segment_seconds: float
) -> tuple[int, int]:
    """(BANDWIDTH, AVERAGE-BANDWIDTH): the peak and the mean segment bitrate, bits/s. A short
    last segment, mostly box headers, is left out of the peak."""
    rates = [8 * size / duration for (duration, _), size in zip(segments, sizes, strict=True)]
    if len(rates) > 1 and segments[-1][0] < segment_seconds / 2:
        rates = rates[:-1]
    average = 8 * sum(sizes) / sum(duration for duration, _ in segments)
    return math.ceil(max(*rates, average)), math.ceil(average)


def _finish_variant(
    folder: Path,
    variant: Variant,
    *,
    samples: int,
    master_rate: int,
    channels: int,
    loudness: ffmpeg.LoudnessStats,
    segment_seconds: float,
) -> dict[str, Any]:
    """Fix one variant's init segment and media playlist in place; its record."""
    (init,) = folder.glob("init*.mp4")  # ffmpeg appends the variant's index: init_0.mp4
    init = init.replace(folder / INIT_SEGMENT)
    data = init.read_bytes()
    info = mp4boxes.read_init(data)
    priming = info.pre_skip if info.pre_skip is not None else AAC_PRIMING
    rate = info.media_timescale  # an audio track's media timescale is its sample rate
    valid = round(samples * rate / master_rate)  # the master's length at this variant's rate
    init.write_bytes(
        mp4boxes.set_edit_list(
            data,
            media_time=priming,
            segment_duration=round(valid * info.movie_timescale / rate),
        )
    )
    tags = _loudness_tags(variant.codec, loudness)
    _tag_init(init, tags)
    # ffmpeg's EXTINFs add up to priming + valid samples (the last packet is cut to the end);
    # what plays is the edit: the first segment less the priming, the total exactly ``valid``
    segments = _segments((folder / MEDIA_PLAYLIST).read_text())
    durations = [duration for duration, _ in segments]
    durations[0] -= priming / rate
    durations[-1] = valid / rate - sum(durations[:-1])
    segments = [(d, uri) for d, (_, uri) in zip(durations, segments, strict=True)]
    (folder / MEDIA_PLAYLIST).write_text(_media_playlist(segments))
    sizes = [(folder / uri).stat().st_size for _, uri in segments]
    bandwidth, average = _bandwidths(segments, sizes, segment_seconds)
    return {
        "name": variant.name,
        "codec": variant.codec,
        "codecs": variant.codecs,
        "bitrate_kbps": variant.bitrate_kbps,
        "sample_rate": rate,
        "channels": channels,
        "segments": len(segments),
        "duration_s": round(valid / rate, 6),
        "priming_samples": priming,
        "bytes": init.stat().st_size + sum(sizes),
        "bandwidth": bandwidth,
        "average_bandwidth": average,
        "playlist": f"{variant.name}/{MEDIA_PLAYLIST}",
        "tags": tags,
    }


def _master_playlist(records: Iterable[dict[str, Any]]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in records:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r['bandwidth']},"
            f'AVERAGE-BANDWIDTH={r["average_bandwidth"]},CODECS="{r["codecs"]}"'
        )
        lines.append(r["playlist"])
    return "\n".join([*lines, ""])


def encode_ladder(
    master: Path,
    out_dir: Path,
    *,
    loudness: ffmpeg.LoudnessStats,
    timeout: float,
    segment_seconds: float = 6.0,
    variants: Sequence[Variant] = LADDER,
) -> dict[str, Any]:
    """Encode the normalised FLAC ``master`` into an HLS ladder in ``out_dir``, decoding it once.

    ``out_dir`` is replaced whole: the ladder is written beside it and renamed into place.
    ``loudness`` is the master's (the normalisation's output): the init segments' loudness tags
    state it, as the ladder is encoded from it without a limiter. Returns a JSON-able record
    whose ``files`` lists every file (path relative to ``out_dir``, content type) to store.
    """
    stream = FLAC(master).info
    samples, rate, channels = stream.total_samples, stream.sample_rate, stream.channels
    if not samples:  # STREAMINFO may leave it unknown; the normalisation's FLAC states it
        raise ValueError(f"{master.name} does not state its length")
    out_dir = out_dir.resolve()  # absolute: the hls muxer takes no "file:" prefix to its names
    if "%" in str(out_dir):
        raise ValueError("the hls muxer would read a % in the folder's name as a pattern")
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        ffmpeg.run(_ffmpeg_args(master, staging, variants, rate, segment_seconds), timeout=timeout)
        records = [
            _finish_variant(
                staging / variant.name,
                variant,
                samples=samples,
                master_rate=rate,
                channels=channels,
                loudness=loudness,
                segment_seconds=segment_seconds,
            )
            for variant in variants
        ]
        (staging / MASTER_PLAYLIST).write_text(_master_playlist(records))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    files = [MASTER_PLAYLIST] + [
        f"{r['name']}/{name}"
        for r in records
        for name in sorted(p.name for p in (out_dir / r["name"]).iterdir())
    ]
    return {
        "master": MASTER_PLAYLIST,
        "segment_seconds": segment_seconds,
        "duration_s": round(samples / rate, 6),
        "variants": records,
        "files": [{"path": f, "content_type": CONTENT_TYPES[Path(f).suffix]} for f in files],
    }


def playback_loudness(
    integrated: float | None,
    lra: float | None,
    true_peak: float | None,
    targets: Sequence[float] = (-14.0, -16.0, -23.0),
    *,
    peak_limit_dbtp: float = -1.0,
) -> dict[str, Any]:
    """The loudness fields of the record and the playback API: what was measured, and for each
    target the gain a player applies to reach it.

    A gain is held down so that the true peak stays at ``peak_limit_dbtp``: players apply it as a
    plain multiplication with no limiter, so a boost past full scale would clip, and the 1 dB
    margin covers the peaks lossy decoding adds. Silence (no integrated loudness) gets no gain.
    """

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    integrated, lra, true_peak = finite(integrated), finite(lra), finite(true_peak)
    gains = []
    for target in targets:
        gain = 0.0 if integrated is None else target - integrated
        limited = true_peak is not None and gain > peak_limit_dbtp - true_peak
        if limited and true_peak is not None:
            gain = peak_limit_dbtp - true_peak
        gains.append({"target_lufs": target, "gain_db": round(gain, 2), "peak_limited": limited})
    return {
        "integrated_lufs": integrated,
        "range_lu": lra,
        "true_peak_dbtp": true_peak,
        "peak_limit_dbtp": peak_limit_dbtp,
        "gains": gains,
    }


# --- playlists served to one viewer ------------------------------------------------------------

# A URI attribute: its name starts the attribute list or follows a comma (not e.g. "XURI=")
_URI_ATTRIBUTE = re.compile(r'(?<=[:,])URI="([^"]*)"')
_MEDIA_URI_TAGS = ("#EXT-X-MAP:",)
_MASTER_URI_TAGS = ("#EXT-X-MEDIA:", "#EXT-X-I-FRAME-STREAM-INF:")


def _rewrite(text: str, sign: Callable[[str], str], uri_tags: tuple[str, ...]) -> str:
    def signed(uri: str) -> str:
        out = sign(uri)
        if any(c in out for c in '"\r\n'):
            raise ValueError("a playlist URI cannot hold a quote or a line break")
        return out

    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(uri_tags):
            line = _URI_ATTRIBUTE.sub(lambda m: f'URI="{signed(m[1])}"', stripped)
        elif stripped and not stripped.startswith("#"):
            line = signed(stripped)
        lines.append(line)
    return "\n".join([*lines, ""])


def rewrite_media_playlist(text: str, sign: Callable[[str], str]) -> str:
    """A media playlist with each segment URI and the EXT-X-MAP URI replaced by ``sign(uri)``
    (e.g. a presigned URL: a relative URI would resolve without a signature)."""
    return _rewrite(text, sign, _MEDIA_URI_TAGS)


def rewrite_master_playlist(text: str, sign: Callable[[str], str]) -> str:
    """A master playlist with each variant URI (and any EXT-X-MEDIA or I-frame playlist URI)
    replaced by ``sign(uri)``."""
    return _rewrite(text, sign, _MASTER_URI_TAGS)
