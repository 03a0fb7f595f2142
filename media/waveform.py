"""Waveform analysis in one streaming decode: peaks for players, a PNG graph, level statistics
and the loudness of the upload as it came in.

Peaks follow BBC audiowaveform's JSON format version 2, which peaks.js and waveform-data.js read
unchanged. They are computed at the renditions' sample rate from the start of the audio; the MP3
renditions carry a LAME gapless header, so players that honour it (every current browser and
ffmpeg) play sample for sample in step with the peaks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trackflow.errors import InputRejected
from trackflow.media import ffmpeg
from trackflow.media.probe import AudioInfo

__all__ = [
    "Analysis",
    "PeaksBuilder",
    "analyse_audio",
    "peaks_document",
    "render_png",
]

BLOCK_FRAMES = 1 << 16
WAVEFORM_COLOUR = (255, 85, 0, 255)


class PeaksBuilder:
    """Accumulates min/max pairs of ``samples_per_pixel`` frames from blocks of PCM, plus levels.

    Blocks arrive as float32 arrays of shape (frames, channels); memory is one block and the
    peaks themselves (8 bytes a pixel).
    """

    def __init__(self, samples_per_pixel: int, sample_rate: int, silence_dbfs: float) -> None:
        self.samples_per_pixel = samples_per_pixel
        self.sample_rate = sample_rate
        self._silence = 10 ** (silence_dbfs / 20)
        self._carry = np.empty((0, 1), dtype=np.float32)
        self._mins: list[np.ndarray] = []
        self._maxs: list[np.ndarray] = []
        self._loud: list[np.ndarray] = []  # per pixel: is any channel above the silence level
        self.frames = 0
        self._sum_squares = 0.0
        self._samples = 0
        self._peak = 0.0

    def add(self, block: np.ndarray) -> None:
        self.frames += len(block)
        self._sum_squares += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        self._samples += block.size
        if block.size:
            self._peak = max(self._peak, float(np.abs(block).max()))
        mono = block.mean(axis=1, dtype=np.float32, keepdims=True) if block.shape[1] > 1 else block
        loud = np.abs(block).max(axis=1, keepdims=True)
        data = (
            np.concatenate([self._carry, np.concatenate([mono, loud], axis=1)])
            if len(self._carry)
            else np.concatenate([mono, loud], axis=1)
        )
        whole = len(data) - len(data) % self.samples_per_pixel
        self._consume(data[:whole])
        self._carry = data[whole:]

    def _consume(self, data: np.ndarray) -> None:
        if not len(data):
            return
        pixels = data.reshape(-1, self.samples_per_pixel, 2)
        self._mins.append(pixels[:, :, 0].min(axis=1))
        self._maxs.append(pixels[:, :, 0].max(axis=1))
        self._loud.append(pixels[:, :, 1].max(axis=1) > self._silence)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._carry):
            self._consume(
                np.pad(self._carry, ((0, self.samples_per_pixel - len(self._carry)), (0, 0)))
            )
            self._carry = self._carry[:0]
        join = lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype)  # noqa: E731
        return join(self._mins, np.float32), join(self._maxs, np.float32), join(self._loud, bool)

    @property
    def peak_dbfs(self) -> float | None:
        return _dbfs(self._peak)

    @property
    def rms_dbfs(self) -> float | None:
        return _dbfs(math.sqrt(self._sum_squares / self._samples)) if self._samples else None


def _dbfs(amplitude: float) -> float | None:
    return round(20 * math.log10(amplitude), 2) if amplitude > 0 else None


@dataclass(frozen=True)
class Analysis:
    duration_s: float
    sample_rate: int
    channels: int
    samples_per_pixel: int
    peak_dbfs: float | None  # None for digital silence
    rms_dbfs: float | None
    cue_in_s: float | None  # first sound above the silence threshold
    cue_out_s: float | None  # end of the last sound above it
    loudness: ffmpeg.LoudnessStats

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["loudness"] = self.loudness.as_record()
        return record


def analyse_audio(
    path: Path,
    info: AudioInfo,
    *,
    samples_per_pixel: int,
    sample_rate: int,
    silence_dbfs: float,
    timeout: float,
) -> tuple[Analysis, np.ndarray, np.ndarray]:
    """Decode once: peaks (min and max arrays), level statistics and EBU R128 loudness."""
    builder = PeaksBuilder(samples_per_pixel, sample_rate, silence_dbfs)
    channels = info.channels
    args = [
        *ffmpeg.input_args(path, info.demuxer),
        "-filter_complex",
        "[0:a:0]asplit=2[measure][pcm];"
        "[measure]ebur128=peak=true:framelog=quiet,anullsink;"
        f"[pcm]aresample={sample_rate}:resampler=soxr[out]",
        "-map", "[out]", "-ac", str(channels),
    ]  # fmt: skip
    stderr: list[str] = []
    for block in ffmpeg.read_pcm(
        args,
        channels=channels,
        block_frames=BLOCK_FRAMES,
        timeout=timeout,
        loglevel="info",
        stderr_sink=stderr,
    ):
        builder.add(block)
    mins, maxs, loud = builder.finish()
    duration = builder.frames / sample_rate
    if info.duration_s and duration < 0.9 * info.duration_s - 1:
        raise InputRejected(
            f"the audio stops after {duration:.1f} s of the {info.duration_s:.1f} s its header "
            "declares: the file is truncated or damaged",
            code="corrupt_audio",
        )
    if duration < 1.0:
        raise InputRejected(f"the track lasts {duration:.2f} s; the minimum is 1 s", "too_short")
    sounding = np.flatnonzero(loud)
    seconds_per_pixel = samples_per_pixel / sample_rate
    analysis = Analysis(
        duration_s=round(duration, 4),
        sample_rate=sample_rate,
        channels=channels,
        samples_per_pixel=samples_per_pixel,
        peak_dbfs=builder.peak_dbfs,
        rms_dbfs=builder.rms_dbfs,
        cue_in_s=round(float(sounding[0]) * seconds_per_pixel, 3) if len(sounding) else None,
        cue_out_s=round(min(duration, float(sounding[-1] + 1) * seconds_per_pixel), 3)
        if len(sounding)
        else None,
        loudness=ffmpeg.parse_ebur128_summary(stderr[0]),
    )
    return analysis, mins, maxs


def peaks_document(
    mins: np.ndarray, maxs: np.ndarray, *, sample_rate: int, samples_per_pixel: int, bits: int
) -> dict[str, Any]:
    """audiowaveform JSON version 2: interleaved min/max pairs as 8- or 16-bit integers."""
    scale = 127 if bits == 8 else 32767
    low = -128 if bits == 8 else -32768
    lo = np.clip(np.floor(mins * scale), low, scale).astype(int)
    hi = np.clip(np.ceil(maxs * scale), low, scale).astype(int)
    data = np.empty(2 * len(lo), dtype=int)
    data[0::2], data[1::2] = lo, hi
    return {
        "version": 2,
        "channels": 1,
        "sample_rate": sample_rate,
        "samples_per_pixel": samples_per_pixel,
        "bits": bits,
        "length": len(lo),
        "data": data.tolist(),
    }


def render_png(mins: np.ndarray, maxs: np.ndarray, path: Path, *, width: int, height: int) -> None:
    """Draw the waveform on a transparent background, scaled to the loudest peak."""
    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    if len(mins):
        edges = np.linspace(0, len(mins), width + 1).astype(int)
        starts = np.minimum(edges[:-1], len(mins) - 1)
        column_min = np.minimum.reduceat(mins, starts)
        column_max = np.maximum.reduceat(maxs, starts)
        scale = max(float(np.abs(mins).max()), float(np.abs(maxs).max()), 1e-9)
        middle = (height - 1) / 2
        top = np.floor(middle - column_max / scale * middle).astype(int)
        bottom = np.ceil(middle - column_min / scale * middle).astype(int)
        rows = np.arange(height)[:, None]
        mask = (rows >= np.minimum(top, bottom)) & (rows <= np.maximum(top, bottom))
        canvas[mask] = WAVEFORM_COLOUR
    Image.fromarray(canvas, "RGBA").save(path, "PNG", optimize=True)
