"""The input gate: what is this upload, really, and may it go any further?

The format is identified from the bytes (never the name or the Content-Type the client sent),
then parsed by mutagen, then a few seconds are decoded. Anything that fails ends the track with
one of the codes below, before any heavy work is spent on it. Its message is a sentence of ours:
what a parser or ffmpeg said about the file is logged, never shown.

The duration is the stream's, not only the header's. Where the header is an estimate or can
disagree with the packets (MP4's ``mdhd``, an MP3's Xing count or bitrate, ADTS's bitrate), the
packets are counted by a demux-only ffmpeg pass (``-c copy``: no decoding, so a small fraction
of a decode's cost), and their total wins when the two disagree by more than a frame or two of
encoder padding. This belongs in the gate rather than in the waveform's full decode: the gate's
facts are what the record shows and what the duration limits are checked against (a header
claiming minutes over hours of audio must not pass), and the metadata step, which records them,
runs beside the waveform, not after it.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import mutagen
from mutagen.aac import AAC
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from trackflow.errors import InputRejected
from trackflow.logs import get_logger
from trackflow.media import ffmpeg

__all__ = [
    "AudioInfo",
    "GateLimits",
    "inspect_audio",
    "open_audio",
    "reconcile_duration",
    "sniff",
]

log = get_logger(__name__)

UNSUPPORTED = "unsupported_format"
CORRUPT = "corrupt_audio"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
NO_AUDIO = "no_audio_stream"


@dataclass(frozen=True)
class GateLimits:
    min_duration_s: float = 1.0
    max_duration_s: float = 3 * 3600.0
    max_channels: int = 6  # up to 5.1
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000


@dataclass(frozen=True)
class AudioInfo:
    """What the gate learned about an accepted upload."""

    format: str  # mp3, flac, wav, aiff, ogg, mp4, aac
    family: str  # format and, for Ogg, its codec: which parser reads the file
    demuxer: str  # the ffmpeg demuxer every later step must use
    codec: str
    duration_s: float
    sample_rate: int
    channels: int
    bitrate: int  # bits per second, 0 when unknown
    bits_per_sample: int | None = None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


# family -> (mutagen class, ffmpeg demuxer)
_FAMILIES: dict[str, tuple[type[mutagen.FileType], str]] = {
    "flac": (FLAC, "flac"),
    "wav": (WAVE, "wav"),
    "aiff": (AIFF, "aiff"),
    "mp4": (MP4, "mov"),
    "mp3": (MP3, "mp3"),
    "aac": (AAC, "aac"),
    "ogg-vorbis": (OggVorbis, "ogg"),
    "ogg-opus": (OggOpus, "ogg"),
    "ogg-flac": (OggFLAC, "ogg"),
}
FORMAT_NAMES = {
    "flac": "FLAC",
    "wav": "WAV",
    "aiff": "AIFF",
    "mp4": "MP4",
    "mp3": "MP3",
    "aac": "AAC",
    "ogg-vorbis": "Ogg Vorbis",
    "ogg-opus": "Opus",
    "ogg-flac": "Ogg FLAC",
}
# Formats whose header duration is an estimate, or a field that can disagree with the packets;
# the others count samples in the header (STREAMINFO, a data chunk's size, the last granule),
# and a lie there is caught by the waveform's decode (truncated) or the limits (a bomb).
_HEADER_MAY_DISAGREE = frozenset({"mp4", "mp3", "aac"})
# Encoder delay and padding differ between a gapless header and the packets by a frame or two
# (tens of milliseconds); beyond this the header is wrong, not rounded.
DURATION_TOLERANCE_S = 0.5
DEMUX_TIMEOUT_S = 120.0
_MP4_CODECS = {
    "mp4a.40.2": "aac",
    "mp4a.40.5": "aac",
    "mp4a.40.29": "aac",
    "mp4a.40.1": "aac",
    "alac": "alac",
}
_NOT_AUDIO_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"PK\x03\x04",
    b"#EXTM3U",
    b"ffconcat",
    b"\x1aE\xdf\xa3",  # Matroska / WebM
    b"<?xml",
    b"<!DOCTYPE",
    b"<html",
)


# A leading tag larger than this is not part of a music file we take.
MAX_LEADING_TAG_BYTES = 16 * 2**20


def _skip_id3v2(data: bytes) -> int:
    """Offset just past an ID3v2 tag at the start of ``data`` (0 when there is none)."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = 0
    for byte in data[6:10]:
        if byte & 0x80:
            return 0
        size = (size << 7) | byte
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


_MPEG_BITRATES = {  # (version, layer) -> kbps by index
    (1, 3): [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    (2, 3): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_MPEG_RATES = {1: [44100, 48000, 32000], 2: [22050, 24000, 16000], 25: [11025, 12000, 8000]}


def _mpeg_frame_length(header: bytes) -> int | None:
    """Length of the MPEG-1/2/2.5 layer III frame starting with ``header``, or None if invalid."""
    if len(header) < 4:
        return None
    (word,) = struct.unpack(">I", header[:4])
    if word >> 21 != 0x7FF:
        return None
    version = {3: 1, 2: 2, 0: 25}.get((word >> 19) & 3)
    layer = 4 - ((word >> 17) & 3)
    bitrate_index = (word >> 12) & 0xF
    rate_index = (word >> 10) & 3
    if version is None or layer != 3 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    kbps = _MPEG_BITRATES[(1 if version == 1 else 2, 3)][bitrate_index]
    rate = _MPEG_RATES[version][rate_index]
    padding = (word >> 9) & 1
    per_frame = 144 if version == 1 else 72
    return per_frame * kbps * 1000 // rate + padding


def _looks_like_mpeg(data: bytes, start: int) -> bool:
    """Three consecutive valid layer III frame headers, as decoders require before trusting sync."""
    for offset in range(start, min(len(data) - 4, start + 4096)):
        position, frames = offset, 0
        while frames < 3:
            length = _mpeg_frame_length(data[position : position + 4])
            if not length:
                break
            position += length
            frames += 1
        if frames == 3 or (frames and position >= len(data)):
            return True
    return False


def _looks_like_adts(data: bytes, start: int) -> bool:
    position = start
    for _ in range(3):
        if position + 7 > len(data) or data[position] != 0xFF or data[position + 1] & 0xF6 != 0xF0:
            return False
        length = (
            ((data[position + 3] & 3) << 11) | (data[position + 4] << 3) | (data[position + 5] >> 5)
        )
        if length < 7:
            return False
        position += length
    return True


def sniff(head: bytes) -> str | None:
    """The container family of a file from its first bytes, or None when it is no audio we take."""
    if any(head.startswith(magic) for magic in _NOT_AUDIO_MAGIC):
        return None
    start = _skip_id3v2(head)
    body = head[start:]
    if body.startswith(b"fLaC"):
        return "flac"
    if start == 0:
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return "wav"
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return "aiff"
        if head[4:8] == b"ftyp":
            return "mp4"
        if head[:4] == b"OggS":
            return _sniff_ogg(head)
    if _looks_like_adts(head, start):
        return "aac"
    if _looks_like_mpeg(head, start):
        return "mp3"
    return None


def _sniff_ogg(head: bytes) -> str | None:
    segments = head[26] if len(head) > 26 else 0
    packet = head[27 + segments : 27 + segments + 8]
    if packet.startswith(b"\x01vorbis"):
        return "ogg-vorbis"
    if packet.startswith(b"OpusHead"):
        return "ogg-opus"
    if packet.startswith(b"\x7fFLAC"):
        return "ogg-flac"
    if packet.startswith((b"\x80theora", b"fishead", b"\x80kate")):
        return "ogg-video"
    return None


def _codec(family: str, audio: mutagen.FileType) -> str:
    info: Any = audio.info  # each format's own StreamInfo
    if family == "mp4":
        if not getattr(info, "codec", "") or not getattr(info, "channels", 0):
            raise InputRejected("the file has no audio stream", code=NO_AUDIO)
        codec = _MP4_CODECS.get(info.codec)
        if codec is None:
            # the codec's name comes from the file: logged, not echoed to the uploader
            log.info("mp4_codec_refused", codec=str(getattr(info, "codec", ""))[:40])
            raise InputRejected(
                "the MP4 file holds audio in a codec we do not take (only AAC and ALAC)",
                code=UNSUPPORTED,
            )
        return codec
    if family in ("wav", "aiff"):
        return f"pcm_{getattr(info, 'bits_per_sample', 16)}bit"
    return {"ogg-vorbis": "vorbis", "ogg-opus": "opus", "ogg-flac": "flac"}.get(family, family)


def inspect_audio(path: Path, limits: GateLimits | None = None) -> AudioInfo:
    """Identify and check an upload; raises ``InputRejected`` with a code users can act on."""
    limits = limits or GateLimits()
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InputRejected("the file is empty", code=TOO_SHORT)
    with path.open("rb") as handle:
        # the audio starts after a leading ID3v2 tag, which cover art makes hundreds of KB long
        tag = min(_skip_id3v2(handle.read(10)), MAX_LEADING_TAG_BYTES)
        handle.seek(0)
        head = handle.read(tag + 64 * 1024)
    family = sniff(head)
    if family == "ogg-video":
        raise InputRejected("the Ogg file holds video but no audio stream", code=NO_AUDIO)
    if family is None:
        raise InputRejected(
            "this is not an audio file we accept (MP3, FLAC, WAV, AIFF, Ogg Vorbis, Opus, "
            "AAC or ALAC in M4A)",
            code=UNSUPPORTED,
        )
    kind, demuxer = _FAMILIES[family]
    try:
        # The class is chosen by the sniffer: mutagen never guesses from the name.
        audio = kind(path)
    except Exception as exc:  # mutagen raises many types for damaged files
        detail = f"{type(exc).__name__}: {exc}"
        log.warning("audio_unparsable", family=family, error=detail)
        if family == "mp4" and "audio" in str(exc).lower():
            raise InputRejected("the file has no audio stream", code=NO_AUDIO) from exc
        raise InputRejected(
            f"the file is damaged: its {FORMAT_NAMES[family]} data cannot be read",
            code=CORRUPT,
            detail=detail,
        ) from exc
    info = audio.info
    channels = int(getattr(info, "channels", 0) or 0)
    # Opus always decodes at 48 kHz; its header does not say so.
    sample_rate = int(getattr(info, "sample_rate", 0) or (48_000 if family == "ogg-opus" else 0))
    duration = float(getattr(info, "length", 0.0) or 0.0)
    result = AudioInfo(
        format=family.split("-")[0],
        family=family,
        demuxer=demuxer,
        codec=_codec(family, audio),
        duration_s=round(duration, 3),
        sample_rate=sample_rate,
        channels=channels,
        bitrate=int(getattr(info, "bitrate", 0) or 0),
        bits_per_sample=getattr(info, "bits_per_sample", None),
    )
    _check_limits(result, limits)
    _check_decodes(path, result)
    if family in _HEADER_MAY_DISAGREE or not result.duration_s:
        stream = _stream_duration(path, result)
        duration_s = round(reconcile_duration(result.duration_s, stream), 3)
        if duration_s != result.duration_s:
            log.info("duration_from_stream", header_s=result.duration_s, stream_s=stream)
            result = replace(result, duration_s=duration_s)
            _check_limits(result, limits)
    return result


def reconcile_duration(
    header_s: float, stream_s: float | None, tolerance_s: float = DURATION_TOLERANCE_S
) -> float:
    """The duration to believe: the header's, unless the stream's packets say otherwise by more
    than ``tolerance_s`` (or the header says nothing). A gapless header that trimmed encoder
    padding is exact and kept; the packets' total includes that padding."""
    if stream_s is None or stream_s <= 0:
        return header_s
    if header_s <= 0 or abs(stream_s - header_s) > tolerance_s:
        return stream_s
    return header_s


def _stream_duration(path: Path, info: AudioInfo) -> float | None:
    """The audio stream's length from its packets, demuxed without decoding; None if unknown."""
    args = [
        *ffmpeg.input_args(path, info.demuxer),
        "-map",
        "0:a:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    try:
        seconds = ffmpeg.run(args, timeout=DEMUX_TIMEOUT_S).out_time_s
    except ffmpeg.FfmpegFailed:
        return None  # the decode check passed: keep the header's figure
    return seconds or None


def open_audio(path: Path, info: AudioInfo) -> mutagen.FileType:
    """The upload parsed by mutagen (tags and pictures), by the parser the gate chose."""
    kind, _ = _FAMILIES[info.family]
    return kind(path)


def _check_limits(info: AudioInfo, limits: GateLimits) -> None:
    if info.channels == 0 or info.sample_rate == 0:
        raise InputRejected("the file declares no audio channels", code=NO_AUDIO)
    if info.channels > limits.max_channels:
        raise InputRejected(
            f"{info.channels} channels: at most {limits.max_channels} (5.1) are accepted",
            code=UNSUPPORTED,
        )
    if not limits.min_sample_rate <= info.sample_rate <= limits.max_sample_rate:
        raise InputRejected(
            f"sample rate {info.sample_rate} Hz is outside "
            f"{limits.min_sample_rate // 1000}-{limits.max_sample_rate // 1000} kHz",
            code=UNSUPPORTED,
        )
    if info.duration_s and info.duration_s < limits.min_duration_s:
        raise InputRejected(
            f"the track lasts {info.duration_s:.2f} s; the minimum is {limits.min_duration_s:g} s",
            code=TOO_SHORT,
        )
    if info.duration_s > limits.max_duration_s:
        raise InputRejected(
            f"the track lasts {info.duration_s / 60:.0f} minutes; the limit is "
            f"{limits.max_duration_s / 60:.0f} minutes",
            code=TOO_LONG,
        )


def _check_decodes(path: Path, info: AudioInfo, seconds: float = 3.0) -> None:
    """Decode the first seconds: headers that parse over data that does not are caught here."""
    args = [*ffmpeg.decode_args(path, info.demuxer, channels=info.channels), "-t", str(seconds)]
    frames = sum(
        len(block)
        for block in ffmpeg.read_pcm(args, channels=info.channels, block_frames=1 << 16, timeout=60)
    )
    if frames == 0:
        raise InputRejected("no audio could be decoded from the file", code=CORRUPT)
