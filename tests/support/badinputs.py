"""A corpus of bad uploads, each with the error code it must end with."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import audio
from trackflow.media.samples import pcm16

# name -> (how to make it, expected code)
Maker = Callable[[Path, Path], Path]


def _bytes(content: bytes) -> Maker:
    def make(folder: Path, _: Path) -> Path:
        path = folder / "upload.mp3"
        path.write_bytes(content)
        return path

    return make


def _image(fmt: str) -> Maker:
    def make(folder: Path, _: Path) -> Path:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, fmt)
        path = folder / "song.mp3"
        path.write_bytes(buffer.getvalue())
        return path

    return make


def _truncated(fmt: str, keep: float) -> Maker:
    def make(folder: Path, source: Path) -> Path:
        path = audio.encode(source, fmt, folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return make


def _zeroed_frames(fmt: str) -> Maker:
    def make(folder: Path, source: Path) -> Path:
        path = audio.encode(source, fmt, folder)
        data = bytearray(path.read_bytes())
        data[300:] = bytes(len(data) - 300)
        path.write_bytes(bytes(data))
        return path

    return make


def _short(seconds: float, fmt: str) -> Maker:
    def make(folder: Path, _: Path) -> Path:
        wav = audio.write_wav(
            folder / "short.wav", audio.synthesise(seconds, 3)[: int(seconds * 44100)]
        )
        return audio.encode(wav, fmt, folder, name="short") if fmt != "wav" else wav

    return make


def _lying_wav(hours: float) -> Maker:
    """A WAV whose header declares hours of audio but holds a second: a duration bomb."""

    def make(folder: Path, _: Path) -> Path:
        rate, channels = 44100, 2
        pcm = pcm16(audio.synthesise(1.0, 4))
        declared = int(hours * 3600 * rate * channels * 2)
        header = (
            b"RIFF"
            + struct.pack("<I", 36 + declared)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
            + b"data"
            + struct.pack("<I", declared)
        )
        path = folder / "long.wav"
        path.write_bytes(header + pcm)
        return path

    return make


def _silent_flac(hours: float) -> Maker:
    """Hours of silence compress to almost nothing: a decompression bomb for audio."""

    def make(folder: Path, _: Path) -> Path:
        path = folder / "bomb.flac"
        audio.ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"anullsrc=r=8000:cl=mono:d={hours * 3600}",
            "-c:a",
            "flac",
            "-compression_level",
            "0",
            str(path),
        )
        return path

    return make


def _zip_of_audio() -> Maker:
    def make(folder: Path, source: Path) -> Path:
        import zipfile

        path = folder / "album.mp3"
        with zipfile.ZipFile(path, "w") as archive:
            archive.write(source, "track.wav")
        return path

    return make


def _matroska() -> Maker:
    def make(folder: Path, source: Path) -> Path:
        path = folder / "audio.mka"
        audio.ffmpeg("-i", str(source), "-c:a", "libvorbis", "-f", "matroska", str(path))
        return path

    return make


def _garbage_after_id3() -> Maker:
    def make(folder: Path, _: Path) -> Path:
        rng = np.random.default_rng(5)
        tag = b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16)
        path = folder / "noise.mp3"
        path.write_bytes(tag + rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
        return path

    return make


def _png_bomb() -> bytes:
    """A PNG of 20000 x 20000 pixels in a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    return buffer.getvalue()


CORPUS: dict[str, tuple[Maker, str]] = {
    "empty file": (_bytes(b""), "too_short"),
    "plain text": (_bytes(b"hello, this is not a song\n" * 100), "unsupported_format"),
    "html page": (
        _bytes(b"<!DOCTYPE html><html><body>404</body></html>" * 50),
        "unsupported_format",
    ),
    "pdf": (_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40), "unsupported_format"),
    "hls playlist": (
        _bytes(
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
        ),
        "unsupported_format",
    ),
    "concat script": (_bytes(b"ffconcat version 1.0\nfile '/etc/passwd'\n"), "unsupported_format"),
    "elf binary": (_bytes(b"\x7fELF\x02\x01\x01" + bytes(2000)), "unsupported_format"),
    "random bytes": (
        _bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes()),
        "unsupported_format",
    ),
    "png image": (_image("PNG"), "unsupported_format"),
    "jpeg image": (_image("JPEG"), "unsupported_format"),
    "png bomb": (_bytes(_png_bomb()), "unsupported_format"),
    "zip archive": (_zip_of_audio(), "unsupported_format"),
    "matroska audio": (_matroska(), "unsupported_format"),
    "midi file": (
        _bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"),
        "unsupported_format",
    ),
    "mp4 video without audio": (
        lambda f, _: audio.video_only_mp4(f / "clip.mp4"),
        "no_audio_stream",
    ),
    "ogg theora without audio": (
        lambda f, _: audio.theora_only_ogg(f / "clip.ogg"),
        "no_audio_stream",
    ),
    "half a second of wav": (_short(0.5, "wav"), "too_short"),
    "a third of a second of mp3": (_short(0.3, "mp3"), "too_short"),
    # what its frames hold, not what its header promises: too little to be a track
    "mp3 cut to its first 5%": (_truncated("mp3", 0.05), "too_short"),
    "flac cut in half": (_truncated("flac", 0.5), "corrupt_audio"),
    "wav header only": (_truncated("wav", 0.001), "corrupt_audio"),
    "flac with zeroed frames": (_zeroed_frames("flac"), "corrupt_audio"),
    "ogg with zeroed pages": (_zeroed_frames("ogg"), "corrupt_audio"),
    "m4a with zeroed data": (_zeroed_frames("m4a"), "corrupt_audio"),
    "garbage behind an id3 tag": (_garbage_after_id3(), "unsupported_format"),
    "wav declaring five hours": (_lying_wav(5.0), "too_long"),
    "ten hours of silent flac": (_silent_flac(10.0), "too_long"),
}
