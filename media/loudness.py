"""Loudness normalisation to a target integrated loudness under a true-peak ceiling.

The upload's loudness was measured during analysis (ITU-R BS.1770-4 via ffmpeg's ebur128). Here a
static gain brings it to the target; where that gain would push the true peak over the ceiling, a
look-ahead limiter working at 4x the sample rate (so that it sees inter-sample peaks) holds it
down, and the result is measured again. Limiting costs some loudness, so the gain is corrected
and the pass repeated until the result is within tolerance. Silence is passed through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackflow.media import ffmpeg
from trackflow.media.probe import AudioInfo

__all__ = ["Normalisation", "normalise"]

SILENCE_LUFS = -70.0  # BS.1770's absolute gate: anything at or below it is silence
OVERSAMPLE = 4
TOLERANCE_LU = 0.15
MAX_PASSES = 3


@dataclass(frozen=True)
class Normalisation:
    input: ffmpeg.LoudnessStats
    output: ffmpeg.LoudnessStats
    gain_db: float
    limited: bool  # a limiter held the true peak under the ceiling
    passes: int
    silent: bool
    target_lufs: float
    ceiling_dbtp: float

    def as_record(self) -> dict[str, Any]:
        return {
            "input": self.input.as_record(),
            "output": self.output.as_record(),
            "gain_db": self.gain_db,
            "limited": self.limited,
            "passes": self.passes,
            "silent": self.silent,
            "target_lufs": self.target_lufs,
            "ceiling_dbtp": self.ceiling_dbtp,
        }


def output_channels(info: AudioInfo) -> int:
    """Renditions are mono for mono sources and stereo for everything else (5.1 folds down)."""
    return 1 if info.channels == 1 else 2


def _filter_graph(gain_db: float, limit_dbtp: float | None, sample_rate: int, layout: str) -> str:
    chain = [f"aformat=channel_layouts={layout}", f"volume={gain_db:.3f}dB:precision=float"]
    if limit_dbtp is not None:
        chain += [
            f"aresample={sample_rate * OVERSAMPLE}:resampler=soxr",
            f"alimiter=limit={10 ** (limit_dbtp / 20):.5f}:attack=2:release=80:level=0:latency=1",
        ]
    chain.append(f"aresample={sample_rate}:resampler=soxr")
    return (
        f"[0:a:0]{','.join(chain)},asplit=2[out][measure];"
        "[measure]ebur128=peak=true:framelog=quiet,anullsink"
    )


def _render(
    path: Path, info: AudioInfo, out_path: Path, graph: str, timeout: float
) -> ffmpeg.LoudnessStats:
    """Apply ``graph`` and write 24-bit FLAC; returns the output's loudness."""
    partial = out_path.with_suffix(".partial.flac")
    result = ffmpeg.run(
        [
            *ffmpeg.input_args(path, info.demuxer),
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            "-c:a",
            "flac",
            "-sample_fmt",
            "s32",
            "-bits_per_raw_sample",
            "24",
            "-compression_level",
            "1",
            "-map_metadata",
            "-1",
            "-y",
            str(partial),
        ],
        timeout=timeout,
        loglevel="info",
    )
    partial.replace(out_path)  # the output appears whole or not at all
    return ffmpeg.parse_ebur128_summary(result.stderr)


def normalise(
    path: Path,
    info: AudioInfo,
    measured: ffmpeg.LoudnessStats,
    out_path: Path,
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    lossy_headroom_db: float,
    lossy_loudness_bias_lu: float,
    sample_rate: int,
    timeout: float,
) -> Normalisation:
    """Write the normalised audio to ``out_path`` (FLAC, ``sample_rate``) and report on it.

    Lossy encoding adds peaks and takes away loudness, most at low bitrates (measured: up to
    1.5 dB more true peak and 0.5 LU less at 128 kbps on material rich in cymbals). So the
    lossless result is held ``lossy_headroom_db`` under the ceiling that the MP3 renditions must
    respect, and aimed ``lossy_loudness_bias_lu`` above the target, so that every rendition
    lands inside the tolerance around it.
    """
    layout = "mono" if output_channels(info) == 1 else "stereo"
    silent = not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs <= SILENCE_LUFS
    aim = target_lufs + lossy_loudness_bias_lu
    gain = 0.0 if silent else aim - measured.integrated_lufs
    limited = False
    passes = 0
    while True:
        passes += 1
        predicted_peak = measured.true_peak_dbtp + gain
        ceiling = ceiling_dbtp - lossy_headroom_db
        limit = ceiling if not silent and predicted_peak > ceiling else None
        limited = limited or limit is not None
        after = _render(
            path, info, out_path, _filter_graph(gain, limit, sample_rate, layout), timeout
        )
        error = aim - after.integrated_lufs
        if silent or abs(error) <= TOLERANCE_LU or passes >= MAX_PASSES or limit is None:
            break
        gain += error  # the limiter took loudness away: ask for more, the limiter still holds
    return Normalisation(
        input=measured,
        output=after,
        gain_db=round(gain, 2),
        limited=limited,
        passes=passes,
        silent=silent,
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
    )
