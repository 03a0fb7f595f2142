"""Music-like test material made on the spot: melody, harmony, bass and percussion, tagged and with
cover art. Used by `make run`, the tests and the benchmarks; deterministic for a given seed.

Pure tones would flatter a fingerprinter and a loudness meter alike; these have notes that start
and stop, chords that change, drums with noise in them, and stereo.
"""

from __future__ import annotations

import io
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trackflow.media import ffmpeg

__all__ = ["SampleTrack", "cover_art", "pcm16", "synthesise", "write_pcm", "write_track"]

RATE = 44_100
_SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
}


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


@dataclass(frozen=True)
class _Voice:
    """A synthesised instrument: its partials, envelope and vibrato differ in every work."""

    partials: np.ndarray
    decay: float
    attack_s: float
    vibrato_hz: float
    vibrato_depth: float  # fraction of the frequency

    @classmethod
    def random(cls, rng: np.random.Generator, partials: int, decay: tuple[float, float]) -> _Voice:
        tilt = rng.uniform(0.8, 2.2)
        amplitudes = np.arange(1, partials + 1, dtype=float) ** -tilt
        amplitudes *= rng.uniform(0.3, 1.0, partials)  # a timbre of its own
        if rng.random() < 0.4:
            amplitudes[1::2] *= rng.uniform(0.05, 0.4)  # hollow, clarinet-like
        return cls(
            amplitudes,
            rng.uniform(*decay),
            rng.uniform(0.003, 0.03),
            rng.uniform(4.0, 6.5),
            rng.uniform(0.0, 0.006),
        )

    def play(self, freq: float, length: int, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(length) / RATE
        wobble = self.vibrato_depth * np.sin(2 * np.pi * self.vibrato_hz * t + rng.uniform(0, 6.3))
        phase = 2 * np.pi * np.cumsum(freq * (1 + wobble)) / RATE
        wave = np.zeros(length)
        for k, amplitude in enumerate(self.partials, start=1):
            if freq * k < RATE / 2.2:
                wave += amplitude * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        envelope = np.exp(-t * self.decay)
        attack = min(length, max(1, int(self.attack_s * RATE)))
        envelope[:attack] *= np.linspace(0, 1, attack)
        release = min(length, int(0.02 * RATE))
        envelope[-release:] *= np.linspace(1, 0, release)
        return wave * envelope


def _drum_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Kick, snare and hat sounds, tuned differently in every work."""
    t = np.arange(int(0.3 * RATE)) / RATE
    low, sweep = rng.uniform(40, 65), rng.uniform(60, 160)
    kick = np.sin(2 * np.pi * (low + sweep * np.exp(-t * rng.uniform(20, 45))) * t)
    kick *= np.exp(-t * rng.uniform(9, 20))
    n = int(0.2 * RATE)
    body = np.sin(2 * np.pi * rng.uniform(160, 260) * np.arange(n) / RATE)
    snare = rng.standard_normal(n) * rng.uniform(0.5, 1.0) + body * rng.uniform(0.2, 0.8)
    snare *= np.exp(-np.arange(n) / RATE * rng.uniform(15, 35))
    n = int(0.06 * RATE)
    hat = np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / RATE * rng.uniform(50, 120))
    return {"kick": kick, "snare": snare, "hat": hat}


def synthesise(seconds: float, seed: int) -> np.ndarray:
    """Stereo float32 PCM at 44.1 kHz, shape (frames, 2), peak about -1 dBFS.

    Every seed is a different piece: key, mode, tempo, chord progression, instruments, drum
    kit, grooves and a melody of its own, played with a human's small timing slips.
    """
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    out = np.zeros((frames, 2))
    beat = int(RATE * 60 / rng.uniform(78, 160))
    root = int(rng.integers(40, 58))
    scale = _SCALES[str(rng.choice(list(_SCALES)))]
    progression = rng.integers(0, 7, size=int(rng.choice([4, 6, 8])))
    pad = _Voice.random(rng, 4, (0.2, 1.0))
    bass = _Voice.random(rng, 5, (2.0, 5.0))
    lead = _Voice.random(rng, 8, (2.0, 7.0))
    kit = _drum_kit(rng)
    kick_pattern = rng.random(8) < 0.35
    kick_pattern[0] = True
    bass_pattern = rng.random(8) < 0.55
    bass_pattern[0] = True
    pan = rng.uniform(0.25, 0.75)
    swing = rng.uniform(0, 0.12)

    def place(signal: np.ndarray, start: int, left: float, right: float) -> None:
        start = max(0, start + int(rng.normal(0, 0.004) * RATE))  # a player's timing
        end = min(frames, start + len(signal))
        if end > start:
            out[start:end, 0] += signal[: end - start] * left
            out[start:end, 1] += signal[: end - start] * right

    eighth = beat // 2
    bar = 4 * beat
    for bar_index, bar_start in enumerate(range(0, frames, bar)):
        degree = int(progression[bar_index % len(progression)])
        inversion = int(rng.integers(0, 3))
        chord = [root + 12 + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
        chord = chord[inversion:] + [n + 12 for n in chord[:inversion]]
        for note in chord:  # harmony: a pad held for the bar
            place(0.07 * pad.play(_hz(note), bar, rng), bar_start, 0.8, 0.8)
        for step in range(8):
            start = bar_start + step * eighth + (int(swing * eighth) if step % 2 else 0)
            if bass_pattern[step]:
                place(0.2 * bass.play(_hz(chord[0] - 24), eighth, rng), start, 1, 1)
            if kick_pattern[step]:
                place(0.5 * kit["kick"], start, 1, 1)
            if step % 4 == 2:
                place(0.16 * kit["snare"], start, 0.9, 1)
            if rng.random() < 0.9:
                place(0.04 * kit["hat"], start, 1, 0.7)
        position = bar_start
        while position < bar_start + bar:  # melody: a new line every bar
            length = eighth if rng.random() < 0.6 else beat
            if rng.random() < 0.85:
                note = root + 24 + scale[int(rng.integers(7))] + 12 * int(rng.integers(0, 2))
                place(0.14 * lead.play(_hz(note), length, rng), position, pan, 1 - pan)
            position += length
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


def pcm16(pcm: np.ndarray) -> bytes:
    """float PCM (frames, channels) in [-1, 1] as interleaved 16-bit little-endian bytes."""
    return (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()


def write_pcm(pcm: np.ndarray, path: Path, *output_args: str, rate: int = RATE) -> Path:
    """Encode float PCM (frames, channels) to ``path`` with ffmpeg, fed through a pipe; the
    container follows the extension, ``output_args`` choose the codec, bitrate or rate."""
    subprocess.run(
        [
            ffmpeg.ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "s16le",
            "-ar",
            str(rate),
            "-ac",
            str(pcm.shape[1]),
            "-i",
            "pipe:0",
            *output_args,
            str(path),
        ],
        input=pcm16(pcm),
        check=True,
    )
    return path


def write_track(sample: SampleTrack, path: Path, *, bitrate: str = "192k") -> Path:
    """Write ``sample`` as a tagged MP3 with embedded front cover (pydub drives ffmpeg)."""
    with warnings.catch_warnings():  # pydub looks for ffmpeg on PATH at import; we give it ours
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment

    AudioSegment.converter = ffmpeg.ffmpeg_exe()
    pcm = synthesise(sample.seconds, sample.seed)
    segment = AudioSegment(
        data=pcm16(pcm),
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
