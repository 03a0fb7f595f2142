"""Music-like test material made on the spot: melody, harmony, bass and percussion, tagged and with
cover art. Used by `make run`, the tests and the benchmarks; deterministic for a given seed.

Pure tones would flatter a fingerprinter and a loudness meter alike; these have notes that start
and stop, chords that change, drums with noise in them, and stereo.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from trackflow.media import ffmpeg

__all__ = ["SampleTrack", "cover_art", "synthesise", "write_track"]

RATE = 44_100
_SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}
_PROGRESSIONS = [[0, 5, 3, 4], [0, 3, 4, 4], [5, 3, 0, 4], [0, 4, 5, 3], [1, 4, 0, 0]]


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(
    freq: float, length: int, harmonics: int, decay: float, rng: np.random.Generator
) -> np.ndarray:
    t = np.arange(length) / RATE
    wave = np.zeros(length)
    for k in range(1, harmonics + 1):
        wave += np.sin(2 * np.pi * freq * k * t + rng.uniform(0, 2 * np.pi)) / k**1.3
    attack = min(length, int(0.01 * RATE))
    envelope = np.exp(-t * decay)
    envelope[:attack] *= np.linspace(0, 1, attack)
    release = min(length, int(0.02 * RATE))
    envelope[-release:] *= np.linspace(1, 0, release)
    return wave * envelope


def synthesise(seconds: float, seed: int) -> np.ndarray:
    """Stereo float32 PCM at 44.1 kHz, shape (frames, 2), peak about -1 dBFS."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    out = np.zeros((frames, 2))
    bpm = rng.uniform(84, 150)
    beat = int(RATE * 60 / bpm)
    root = int(rng.integers(45, 57))
    scale = _SCALES[rng.choice(list(_SCALES))]
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    pan = rng.uniform(0.3, 0.7)

    def place(signal: np.ndarray, start: int, left: float, right: float) -> None:
        end = min(frames, start + len(signal))
        if end > start:
            out[start:end, 0] += signal[: end - start] * left
            out[start:end, 1] += signal[: end - start] * right

    bar = 4 * beat
    for bar_index, bar_start in enumerate(range(0, frames, bar)):
        degree = progression[bar_index % len(progression)]
        chord = [root + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
        for note in chord:  # harmony: a pad for the whole bar
            place(0.09 * _tone(_hz(note + 12), bar, 3, 0.6, rng), bar_start, 0.8, 0.8)
        for b in range(4):  # bass on every beat
            place(0.22 * _tone(_hz(chord[0] - 12), beat, 4, 3.0, rng), bar_start + b * beat, 1, 1)
        position = bar_start
        while position < bar_start + bar:  # melody: eighths and quarters from the scale
            length = beat // 2 if rng.random() < 0.6 else beat
            if rng.random() < 0.85:
                note = root + 12 + scale[int(rng.integers(7))] + 12 * int(rng.integers(0, 2))
                place(0.16 * _tone(_hz(note), length, 6, 4.0, rng), position, pan, 1 - pan)
            position += length
        for b in range(8):  # drums
            start = bar_start + b * beat // 2
            if b % 4 == 0:
                t = np.arange(int(0.25 * RATE)) / RATE
                kick = np.sin(2 * np.pi * (50 + 120 * np.exp(-t * 30)) * t) * np.exp(-t * 14)
                place(0.5 * kick, start, 1, 1)
            if b % 4 == 2:
                n = int(0.18 * RATE)
                snare = rng.standard_normal(n) * np.exp(-np.arange(n) / RATE * 22)
                place(0.18 * snare, start, 0.9, 1)
            n = int(0.05 * RATE)
            hat = np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / RATE * 80)
            place(0.05 * hat, start, 1, 0.7)
    peak = np.abs(out).max() or 1.0
    return (out / peak * 10 ** (-1 / 20)).astype(np.float32)


def cover_art(seed: int, size: int = 1200, text: str = "") -> bytes:
    """A JPEG cover: a gradient with circles, different for every seed."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    pixels = (a * (1 - ramp) + b * ramp).repeat(size, axis=1).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, size, 2).tolist()
        r = int(rng.integers(size // 12, size // 4))
        draw.ellipse(
            (x - r, y - r, x + r, y + r),
            outline=tuple(rng.integers(0, 256, 3).tolist()),
            width=max(2, size // 60),
        )
    if text:
        draw.text((size // 20, size // 20), text, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


@dataclass
class SampleTrack:
    title: str
    artist: str
    album: str = "Generated Sessions"
    genre: str = "Electronic"
    seconds: float = 20.0
    seed: int = 1
    year: int = 2026
    track_number: int = 1
    extra_tags: dict[str, str] = field(default_factory=dict)


def write_track(sample: SampleTrack, path: Path, *, bitrate: str = "192k") -> Path:
    """Write ``sample`` as a tagged MP3 with embedded front cover (pydub drives ffmpeg)."""
    with warnings.catch_warnings():  # pydub looks for ffmpeg on PATH at import; we give it ours
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment

    AudioSegment.converter = ffmpeg.ffmpeg_exe()
    pcm = synthesise(sample.seconds, sample.seed)
    segment = AudioSegment(
        data=(np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes(),
        sample_width=2,
        frame_rate=RATE,
        channels=2,
    )
    cover = path.with_suffix(".cover.jpg")
    cover.write_bytes(cover_art(sample.seed, text=sample.title))
    tags = {
        "title": sample.title,
        "artist": sample.artist,
        "album": sample.album,
        "genre": sample.genre,
        "date": str(sample.year),
        "track": str(sample.track_number),
        **sample.extra_tags,
    }
    segment.export(
        path, format="mp3", bitrate=bitrate, tags=tags, cover=str(cover), id3v2_version="4"
    )
    cover.unlink()
    return path
