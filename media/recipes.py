"""Each media step's work as one call: files in, files and records out, parameters from the
settings. The Celery steps (tasks/steps.py) and the media benchmark (`make bench`) both call
these, so the bench measures exactly what a worker runs, with the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trackflow.media import (
    artwork,
    ffmpeg,
    fingerprint,
    invariant,
    loudness,
    probe,
    streaming,
    tags,
    transcode,
    waveform,
)
from trackflow.media.ffmpeg import LoudnessStats
from trackflow.settings import Settings

Analysis = TypeVar("Analysis")

__all__ = [
    "AudioPrints",
    "WaveformFiles",
    "analyse_waveform",
    "encode_ladder",
    "encode_rendition",
    "extract_metadata",
    "fingerprint_audio",
    "fingerprint_upload",
    "normalise_audio",
    "resize_artwork",
]


def extract_metadata(source: Path, info: probe.AudioInfo, fallback_title: str) -> dict[str, Any]:
    """Tags, audio facts and a note of the embedded picture, as the track record keeps them."""
    audio = probe.open_audio(source, info)
    cover = tags.front_cover(audio)
    return {
        "tags": tags.read_tags(audio, fallback_title=fallback_title),
        "audio": info.as_record(),
        "picture": {"mime": cover.mime, "bytes": len(cover.data), "type": cover.picture_type}
        if cover
        else None,
    }


def resize_artwork(
    source: Path, info: probe.AudioInfo, folder: Path, settings: Settings
) -> artwork.ArtworkResult:
    """Every artwork size at 1x and 2x, JPEG and WebP, from the upload's front cover."""
    cover = tags.front_cover(probe.open_audio(source, info))
    return artwork.render_artwork(
        cover.data if cover else None,
        folder,
        settings.artwork_sizes,
        max_pixels=settings.artwork_max_pixels,
        max_bytes=settings.artwork_max_bytes,
    )


@dataclass(frozen=True)
class WaveformFiles:
    analysis: waveform.Analysis
    peaks: Path  # audiowaveform's JSON v2
    png: Path


def analyse_waveform(
    source: Path, info: probe.AudioInfo, folder: Path, settings: Settings
) -> WaveformFiles:
    """Peaks, a PNG graph, levels, cue points and the input's loudness, in one decode."""
    s = settings
    analysis, mins, maxs = waveform.analyse_audio(
        source,
        info,
        samples_per_pixel=s.waveform_samples_per_pixel,
        sample_rate=s.rendition_sample_rate,
        silence_dbfs=s.silence_threshold_dbfs,
        timeout=s.cpu_task_time_limit_s,
    )
    peaks = waveform.peaks_document(
        mins,
        maxs,
        sample_rate=s.rendition_sample_rate,
        samples_per_pixel=s.waveform_samples_per_pixel,
        bits=s.waveform_bits,
    )
    peaks_path, png_path = folder / "waveform.json", folder / "waveform.png"
    peaks_path.write_text(json.dumps(peaks, separators=(",", ":")))
    waveform.render_png(
        mins, maxs, png_path, width=s.waveform_png_width, height=s.waveform_png_height
    )
    return WaveformFiles(analysis, peaks_path, png_path)


def normalise_audio(
    source: Path,
    info: probe.AudioInfo,
    measured: LoudnessStats,
    out: Path,
    settings: Settings,
) -> loudness.Normalisation:
    """The lossless master at the target loudness, under the true-peak ceiling."""
    s = settings
    return loudness.normalise(
        source,
        info,
        measured,
        out,
        target_lufs=s.loudness_target_lufs,
        ceiling_dbtp=s.true_peak_ceiling_dbtp,
        lossy_headroom_db=s.lossy_headroom_db,
        lossy_loudness_bias_lu=s.lossy_loudness_bias_lu,
        sample_rate=s.rendition_sample_rate,
        timeout=s.cpu_task_time_limit_s,
    )


@dataclass(frozen=True)
class AudioPrints:
    """Both fingerprints of one recording: landmarks (exact copies and excerpts, from a few
    index reads) and quads (tempo, pitch and speed changes)."""

    hashes: np.ndarray  # landmarks
    times: np.ndarray
    quads: invariant.Quads  # the index entries the recording joins the catalogue with
    peaks: invariant.Peaks  # ... and the peaks its matches are verified against


def fingerprint_audio(
    source: Path, info: probe.AudioInfo, settings: Settings, scratch: Path
) -> AudioPrints:
    """A recording's landmarks and quads as the catalogue indexes them, from one decode."""
    hashes, times, (quads, peaks) = _decoded_once(
        source, info, settings, scratch, invariant.reference_quads
    )
    return AudioPrints(hashes, times, quads, peaks)


def fingerprint_upload(
    source: Path, info: probe.AudioInfo, settings: Settings, scratch: Path
) -> tuple[AudioPrints, invariant.Upload]:
    """``fingerprint_audio``, and the upload's side of matching, from the same decode."""
    hashes, times, (upload, quads, peaks) = _decoded_once(
        source, info, settings, scratch, invariant.analyse_track
    )
    return AudioPrints(hashes, times, quads, peaks), upload


def _decoded_once(
    source: Path,
    info: probe.AudioInfo,
    settings: Settings,
    scratch: Path,
    analyse: Callable[[np.ndarray], Analysis],
) -> tuple[np.ndarray, np.ndarray, Analysis]:
    """Landmarks streamed from the decode, and ``analyse`` of the whole recording: its PCM is
    spooled to a file in ``scratch`` and memory-mapped (resident memory stays bounded at any
    length)."""
    extractor = fingerprint.LandmarkExtractor()
    spool = scratch / "fingerprint.f32"
    rate = fingerprint.SAMPLE_RATE
    with spool.open("wb") as out:
        for block in ffmpeg.read_pcm(
            ffmpeg.decode_args(source, info.demuxer, sample_rate=rate, channels=1),
            channels=1,
            block_frames=1 << 17,
            timeout=settings.cpu_task_time_limit_s,
        ):
            extractor.add(block)
            out.write(np.ascontiguousarray(block, np.float32).tobytes())
    hashes, times = extractor.finish()
    pcm = np.memmap(spool, np.float32, "r") if spool.stat().st_size else np.zeros(0, np.float32)
    try:
        return hashes, times, analyse(pcm)
    finally:
        del pcm
        spool.unlink()


def encode_rendition(
    master: Path, out: Path, bitrate_kbps: int, master_peak_dbtp: float, settings: Settings
) -> dict[str, Any]:
    """One MP3 rendition of the normalised master, its peaks kept within the allowance."""
    s = settings
    return transcode.encode_mp3(
        master,
        out,
        bitrate_kbps=bitrate_kbps,
        sample_rate=s.rendition_sample_rate,
        source_peak_dbtp=master_peak_dbtp,
        max_peak_dbtp=s.true_peak_ceiling_dbtp + s.mp3_peak_allowance_db,
        timeout=s.cpu_task_time_limit_s,
    )


def encode_ladder(
    master: Path, out_dir: Path, master_loudness: LoudnessStats, settings: Settings
) -> dict[str, Any]:
    """The HLS ladder (AAC-LC 160 and 96 kbps, Opus 96 kbps) of the normalised master, from one
    decode; ``master_loudness`` is the normalisation's output, which the init segments state."""
    s = settings
    return streaming.encode_ladder(
        master,
        out_dir,
        loudness=master_loudness,
        segment_seconds=s.hls_segment_seconds,
        timeout=s.cpu_task_time_limit_s,
    )
