"""Real media files for tests: every accepted format, made with ffmpeg and tagged with mutagen,
and the malformed kinds the input gate must refuse."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TALB, TCON, TDRC, TIT2, TPE1, TRCK
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from PIL import Image

from trackflow.media.ffmpeg import ffmpeg_exe
from trackflow.media.samples import RATE, cover_art, synthesise, write_pcm

# name -> (extension, ffmpeg output arguments)
FORMATS: dict[str, tuple[str, list[str]]] = {
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
    "flac": (".flac", ["-c:a", "flac"]),
    "wav": (".wav", ["-c:a", "pcm_s16le"]),
    "wav24": (".wav", ["-c:a", "pcm_s24le"]),
    "aiff": (".aiff", ["-c:a", "pcm_s16be"]),
    "ogg": (".ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "96k"]),
    "m4a": (".m4a", ["-c:a", "aac", "-b:a", "160k"]),
    "alac": (".m4a", ["-c:a", "alac"]),
}


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    """float PCM (frames, channels) -> 16-bit WAV."""
    return write_pcm(pcm, path, rate=rate)


def music(path: Path, seconds: float = 4.0, seed: int = 1) -> Path:
    return write_wav(path, synthesise(seconds, seed))


def encode(
    source: Path,
    fmt: str,
    out_dir: Path,
    *,
    extra: list[str] | None = None,
    name: str | None = None,
) -> Path:
    extension, args = FORMATS[fmt]
    out = out_dir / f"{name or fmt}{extension}"
    ffmpeg("-i", str(source), *args, *(extra or []), "-map_metadata", "-1", str(out))
    return out


TAGS = {
    "title": "Blue Hour",
    "artist": "Beyoncé & the Testers",
    "album": "Ünit Tests",
    "date": "2024-05-01",
    "genre": "Electronic",
    "track": "3/12",
}


def tag(path: Path, fmt: str, cover: bytes | None = None, tags: dict[str, str] = TAGS) -> Path:
    """Write ``tags`` (and a front cover) the way each format stores them."""
    if fmt in ("mp3", "wav", "wav24", "aiff"):
        if fmt == "mp3":
            id3 = ID3()
        else:
            from mutagen import File

            audio = File(path)
            audio.add_tags()
            id3 = audio.tags
        id3.add(TIT2(encoding=3, text=tags["title"]))
        id3.add(TPE1(encoding=3, text=tags["artist"]))
        id3.add(TALB(encoding=3, text=tags["album"]))
        id3.add(TDRC(encoding=3, text=tags["date"]))
        id3.add(TCON(encoding=3, text=tags["genre"]))
        id3.add(TRCK(encoding=3, text=tags["track"]))
        if cover:
            id3.add(APIC(encoding=3, mime="image/png", type=0, desc="back", data=_png(64)))
            id3.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="front", data=cover))
        if fmt == "mp3":
            id3.save(path, v2_version=4)
        else:
            audio.save()
    elif fmt in ("flac", "ogg", "opus"):
        audio = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](path)
        audio["title"], audio["artist"], audio["album"] = (
            tags["title"],
            tags["artist"],
            tags["album"],
        )
        audio["date"], audio["genre"], audio["tracknumber"] = (
            tags["date"],
            tags["genre"],
            tags["track"],
        )
        if cover:
            picture = Picture()
            picture.type, picture.mime, picture.data = 3, "image/jpeg", cover
            if fmt == "flac":
                audio.add_picture(picture)
            else:
                import base64

                audio["metadata_block_picture"] = [base64.b64encode(picture.write()).decode()]
        audio.save()
    else:
        audio = MP4(path)
        audio["\xa9nam"], audio["\xa9ART"], audio["\xa9alb"] = (
            tags["title"],
            tags["artist"],
            tags["album"],
        )
        audio["\xa9day"], audio["\xa9gen"], audio["trkn"] = tags["date"], tags["genre"], [(3, 12)]
        if cover:
            audio["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_JPEG)]
        audio.save()
    return path


def _png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (0, 128, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def cover(seed: int = 7, size: int = 800) -> bytes:
    return cover_art(seed, size)


def video_only_mp4(path: Path) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=160x120:rate=10",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    return path


def theora_only_ogg(path: Path) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=160x120:rate=10",
        "-c:v",
        "libtheora",
        str(path),
    )
    return path


def pad_mp3(path: Path, size: int) -> Path:
    """Grow an MP3 to exactly ``size`` bytes with ID3 padding: a large file that decodes as
    quickly as the short one (the input gate takes a leading tag up to 16 MiB)."""
    for _ in range(3):
        grow = size - path.stat().st_size
        if grow == 0:
            return path
        ID3(path).save(path, padding=lambda info, grow=grow: info.padding + grow)
    raise AssertionError(f"{path.name} could not be grown to {size} bytes")
