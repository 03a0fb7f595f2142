"""Running ffmpeg safely: an argument list (never a shell), a fixed input format, local files only.

Uploads are untrusted. A crafted "audio" file can really be an HLS playlist or a concat script
that makes ffmpeg open other files or URLs, so every input names its demuxer explicitly (chosen
by the input gate from the content) and may only use the ``file`` and ``pipe`` protocols.
Decoding happens in a child process: a decoder crash ends ffmpeg, never the worker.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trackflow.errors import InputRejected, TrackflowError
from trackflow.logs import get_logger

__all__ = [
    "FfmpegFailed",
    "FfmpegResult",
    "LoudnessStats",
    "decode_args",
    "ffmpeg_exe",
    "input_args",
    "parse_ebur128_summary",
    "read_pcm",
    "run",
]

ALLOWED_PROTOCOLS = "file,pipe"

log = get_logger(__name__)

# What users read when ffmpeg fails: fixed sentences. ffmpeg's own words name the worker's file
# paths and its memory addresses ("[flac @ 0x55...]"); they go to the log, never to the record.
UNDECODABLE = "the audio could not be decoded: the file is damaged or is not what it claims to be"
PROCESSING_FAILED = "the audio could not be processed"
NO_LOUDNESS = "the loudness of the audio could not be measured"


class FfmpegFailed(TrackflowError):
    """ffmpeg exited with an error on input that had passed the gate."""

    code = "ffmpeg_failed"


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped in the imageio-ffmpeg wheel (no root, no system package)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def input_args(path: Path, demuxer: str) -> list[str]:
    """Arguments that open ``path`` with exactly ``demuxer`` and nothing but local protocols, and
    decode it in one thread: a worker runs a media job per core already, and a decoder's frame
    threads only added handovers (docs/performance.md)."""
    return [
        "-threads", "1",
        "-protocol_whitelist", ALLOWED_PROTOCOLS,
        "-f", demuxer,
        "-i", f"file:{Path(path).resolve()}",
    ]  # fmt: skip


def _base_args(loglevel: str = "error") -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel]


@dataclass(frozen=True)
class FfmpegResult:
    stderr: str  # filter reports (ebur128) and warnings
    out_time_s: float  # how much media the last output received, from ffmpeg's progress report


def run(args: Sequence[str], *, timeout: float, loglevel: str = "error") -> FfmpegResult:
    """Run ffmpeg with ``args``. Raises FfmpegFailed on a non-zero exit or a timeout."""
    try:
        done = subprocess.run(
            [*_base_args(loglevel), "-progress", "pipe:1", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        log.warning("ffmpeg_timed_out", timeout_s=timeout)
        raise FfmpegFailed(f"processing the audio took longer than {timeout:.0f} s") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        detail = f"ffmpeg exited with {done.returncode}: {_tail(stderr)}"
        log.warning("ffmpeg_failed", returncode=done.returncode, stderr=_tail(stderr))
        raise FfmpegFailed(PROCESSING_FAILED, detail=detail)
    times = re.findall(r"^out_time_us=(\d+)$", done.stdout.decode("ascii", "replace"), re.M)
    return FfmpegResult(stderr, int(times[-1]) / 1e6 if times else 0.0)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def decode_args(
    path: Path, demuxer: str, *, sample_rate: int | None = None, channels: int | None = None
) -> list[str]:
    """Arguments that decode the first audio stream to float32 PCM (resampled with soxr)."""
    args = [*input_args(path, demuxer), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    if channels:
        args += ["-ac", str(channels)]
    if sample_rate:
        args += ["-ar", str(sample_rate), "-af", "aresample=resampler=soxr"]
    return args


def read_pcm(
    args: Sequence[str],
    *,
    channels: int,
    block_frames: int,
    timeout: float,
    loglevel: str = "error",
    stderr_sink: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Stream float32 PCM from ffmpeg in blocks of ``block_frames`` frames (frames, channels).

    Memory stays bounded by one block whatever the track's length. Decoding errors that ffmpeg
    survives are tolerated (real files have glitches); an ffmpeg that fails outright, or that
    produces no audio at all, raises ``InputRejected(corrupt_audio)``. The full stderr is appended
    to ``stderr_sink`` for callers that parse filter reports (ebur128).
    """
    command = [*_base_args(loglevel), *args, "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    frame_bytes = 4 * channels
    produced = 0
    stderr_chunks: list[bytes] = []
    assert process.stdout is not None and process.stderr is not None  # both piped above
    stderr_pipe = process.stderr
    reader = threading.Thread(target=lambda: stderr_chunks.append(stderr_pipe.read()))
    reader.start()
    try:
        assert process.stdout is not None
        pending = b""
        while True:
            data = process.stdout.read(block_frames * frame_bytes - len(pending))
            if not data:
                break
            pending += data
            if len(pending) < block_frames * frame_bytes:
                continue
            produced += block_frames
            yield np.frombuffer(pending, dtype="<f4").reshape(-1, channels)
            pending = b""
        usable = len(pending) - len(pending) % frame_bytes
        if usable:
            produced += usable // frame_bytes
            yield np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, channels)
        returncode = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join()
        process.stdout.close()
        process.stderr.close()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if stderr_sink is not None:
        stderr_sink.append(stderr)
    if returncode != 0 or produced == 0:
        detail = _tail(stderr) or "no audio data"
        log.warning("decode_failed", returncode=returncode, frames=produced, stderr=detail)
        raise InputRejected(UNDECODABLE, code="corrupt_audio", detail=detail)


@dataclass(frozen=True)
class LoudnessStats:
    """ITU-R BS.1770-4 / EBU R128 measurements (ffmpeg's ebur128 filter)."""

    integrated_lufs: float
    range_lu: float
    true_peak_dbtp: float

    def as_record(self) -> dict[str, float | None]:
        """Plain values; silence measures -inf, which JSON and DynamoDB cannot hold: None."""
        return {
            name: value if math.isfinite(value) else None
            for name, value in (
                ("integrated_lufs", self.integrated_lufs),
                ("range_lu", self.range_lu),
                ("true_peak_dbtp", self.true_peak_dbtp),
            )
        }

    @classmethod
    def from_record(cls, record: dict[str, float | None]) -> LoudnessStats:
        return cls(
            *(
                float("-inf") if (value := record.get(name)) is None else float(value)
                for name in ("integrated_lufs", "range_lu", "true_peak_dbtp")
            )
        )


_SUMMARY = re.compile(
    r"Summary:.*?I:\s+(?P<i>-?[\d.]+|-inf|nan) LUFS.*?LRA:\s+(?P<lra>-?[\d.]+|nan) LU"
    r".*?Peak:\s+(?P<tp>-?[\d.]+|-inf|nan) dBFS",
    re.DOTALL,
)


def parse_ebur128_summary(stderr: str) -> LoudnessStats:
    """Read the summary that ffmpeg's ebur128 filter prints when its input ends."""
    matches = list(_SUMMARY.finditer(stderr))
    if not matches:
        log.warning("loudness_summary_missing", stderr=_tail(stderr))
        raise FfmpegFailed(NO_LOUDNESS, detail="ffmpeg printed no loudness summary")
    m = matches[-1]
    return LoudnessStats(float(m["i"]), float(m["lra"]), float(m["tp"]))
