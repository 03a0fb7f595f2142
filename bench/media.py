"""Media steps against plain references (`make bench`).

For a generated 5-minute stereo 44.1 kHz track, each step of the media core is timed beside a
reference doing the same work with plain ffmpeg command lines (or the plainest numpy, for
peaks); the renditions stage (three MP3s and the HLS ladder) is also compared in CPU seconds,
which a shared machine disturbs less than wall time; then each step runs on a 2-hour stereo
48 kHz input in a process of its own, and its peak resident memory is reported (the Python
process, and its largest ffmpeg child).
Step times are written to .trackflow/bench/steps.json, which `trackflow capacity` reads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from trackflow.media import artwork, ffmpeg, probe, recipes, tags, transcode
from trackflow.media.samples import SampleTrack, synthesise, write_pcm, write_track
from trackflow.settings import Settings

# The workers' settings, but for the time limit: the memory run's 2-hour input may take longer
# than a worker's limit on a slow host, and the limit guards a worker, not a measurement.
SETTINGS = Settings.model_construct(cpu_task_time_limit_s=3 * 3600)
RATE = SETTINGS.rendition_sample_rate
TARGET, CEILING = SETTINGS.loudness_target_lufs, SETTINGS.true_peak_ceiling_dbtp
Step = Callable[[], Any]  # one media step on the bench input


def _run(*args: str) -> None:
    subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


def make_inputs(folder: Path, minutes: float, seed: int = 77) -> tuple[Path, Path]:
    """A tagged MP3 with cover art of ``minutes`` (a minute of music, looped), and its cover
    image for the artwork reference."""
    folder.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    loop = write_track(
        SampleTrack(f"Bench {seed}", "Bench Band", seconds=min(60.0, seconds), seed=seed),
        folder / "loop.mp3",
    )
    track = folder / "track.mp3"
    loops = math.ceil(seconds / 60) - 1
    _run(
        *("-stream_loop", str(loops), "-i", str(loop)),
        *("-t", f"{seconds:.3f}", "-map", "0:a", "-c", "copy", str(track)),
    )
    from mutagen.id3 import ID3

    ID3(loop).save(track)  # the loop's tags and cover on the long file
    cover = folder / "cover.jpg"
    cover.write_bytes(tags.front_cover(probe.open_audio(track, probe.inspect_audio(track))).data)
    return track, cover


# --- the steps, as the tasks call them -----------------------------------------------------------


def _by_step(
    metadata: Step,
    art: Step,
    analyse: Step,
    normalise: Step,
    copyright_check: Step,
    encode: Callable[[int], Step],
    ladder: Step,
) -> dict[str, Step]:
    """The media work under the names the workflow gives its steps."""
    return {
        "extract_metadata": metadata,
        "resize_artwork": art,
        "analyse_waveform": analyse,
        "normalise_audio": normalise,
        "check_copyright": copyright_check,
        **{f"transcode_{bitrate}": encode(bitrate) for bitrate in SETTINGS.rendition_bitrates},
        "encode_ladder": ladder,
    }


def renditions() -> list[str]:
    """The steps of the renditions stage."""
    return [*(f"transcode_{bitrate}" for bitrate in SETTINGS.rendition_bitrates), "encode_ladder"]


def ours(
    track: Path, work: Path, state: dict[str, Any] | None = None
) -> dict[str, Callable[[], Any]]:
    """Each step's media work, through the recipes the workers call, with the same settings;
    later steps read what earlier ones left in ``state``."""
    info = probe.inspect_audio(track)
    state = {} if state is None else state

    def metadata() -> None:
        recipes.extract_metadata(track, probe.inspect_audio(track), fallback_title="x")

    def art() -> None:
        recipes.resize_artwork(track, info, work / "art", SETTINGS)

    def analyse() -> None:
        state["loudness"] = recipes.analyse_waveform(track, info, work, SETTINGS).analysis.loudness

    def normalise() -> None:
        result = recipes.normalise_audio(
            track, info, state["loudness"], work / "norm.flac", SETTINGS
        )
        state["peak"] = result.output.true_peak_dbtp
        state["master_loudness"] = result.output

    def copyright_check() -> None:
        recipes.fingerprint_upload(track, info, SETTINGS, work)

    def encode(bitrate: int) -> Callable[[], None]:
        def run() -> None:
            recipes.encode_rendition(
                work / "norm.flac", work / f"{bitrate}.mp3", bitrate, state["peak"], SETTINGS
            )

        return run

    def ladder() -> None:
        recipes.encode_ladder(work / "norm.flac", work / "hls", state["master_loudness"], SETTINGS)

    return _by_step(metadata, art, analyse, normalise, copyright_check, encode, ladder)


def references(track: Path, cover: Path, work: Path) -> dict[str, Callable[[], Any]]:
    """The same work done the plainest way."""

    def metadata() -> None:
        _run("-i", str(track), "-f", "ffmetadata", str(work / "meta.txt"))

    def art() -> None:
        sizes = [p for _, p in artwork.rendition_names(SETTINGS.artwork_sizes)]
        splits = "".join(f"[s{n}]" for n in range(len(sizes)))
        graph = f"[0:v]crop='min(iw,ih)':'min(iw,ih)',split={len(sizes)}{splits};" + ";".join(
            f"[s{n}]scale={p}:{p}:flags=lanczos,split[j{n}][w{n}]" for n, p in enumerate(sizes)
        )
        outputs = []
        for n, pixels in enumerate(sizes):
            outputs += ["-map", f"[j{n}]", str(work / f"ref{n}_{pixels}.jpg")]
            outputs += ["-map", f"[w{n}]", str(work / f"ref{n}_{pixels}.webp")]
        _run("-i", str(cover), "-filter_complex", graph, *outputs)

    def analyse() -> None:
        raw = subprocess.run(
            [
                ffmpeg.ffmpeg_exe(),
                "-v",
                "error",
                "-i",
                str(track),
                "-ac",
                "1",
                "-ar",
                str(RATE),
                "-f",
                "f32le",
                "-",
            ],
            capture_output=True,
            check=True,
        ).stdout
        pcm = np.frombuffer(raw, "<f4")
        spp = SETTINGS.waveform_samples_per_pixel
        whole = pcm[: len(pcm) // spp * spp].reshape(-1, spp)
        (work / "ref_peaks.json").write_text(
            json.dumps(np.stack([whole.min(1), whole.max(1)], 1).round(3).ravel().tolist())
        )
        _run("-i", str(track), "-af", "ebur128=peak=true", "-f", "null", "-")
        _run(
            "-i",
            str(track),
            "-filter_complex",
            f"showwavespic=s={SETTINGS.waveform_png_width}x{SETTINGS.waveform_png_height}",
            "-frames:v",
            "1",
            str(work / "ref_wave.png"),
        )

    def normalise() -> None:
        measured = subprocess.run(
            [
                ffmpeg.ffmpeg_exe(),
                "-hide_banner",
                "-i",
                str(track),
                "-af",
                f"loudnorm=I={TARGET}:TP={CEILING}:LRA=11:print_format=json",
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        start = measured.rindex("{")  # loudnorm's JSON, with more log lines after it
        stats = json.loads(measured[start : measured.index("}", start) + 1])
        _run(
            "-i",
            str(track),
            "-af",
            f"loudnorm=I={TARGET}:TP={CEILING}:LRA=11:linear=true:measured_I={stats['input_i']}:"
            f"measured_TP={stats['input_tp']}:measured_LRA={stats['input_lra']}:"
            f"measured_thresh={stats['input_thresh']},aresample={RATE}",
            "-c:a",
            "flac",
            str(work / "ref_norm.flac"),
        )

    def copyright_check() -> None:
        _run("-i", str(track), "-f", "chromaprint", str(work / "ref.fp"))

    def encode(bitrate: int) -> Callable[[], None]:
        return lambda: _run(
            "-i",
            str(work / "ref_norm.flac"),
            "-c:a",
            "libmp3lame",
            "-b:a",
            f"{bitrate}k",
            str(work / f"ref{bitrate}.mp3"),
        )

    def ladder() -> None:
        """Each rung on its own, as plain HLS with fMP4 segments."""
        for name, codec, kbps in (
            ("aac160", "aac", 160),
            ("aac96", "aac", 96),
            ("opus96", "libopus", 96),
        ):
            rate = ["-ar", "48000"] if codec == "libopus" else []
            folder = work / "ref_hls" / name
            folder.mkdir(parents=True, exist_ok=True)
            _run(
                *("-i", str(work / "ref_norm.flac"), *rate, "-c:a", codec, "-b:a", f"{kbps}k"),
                *("-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod"),
                *("-hls_segment_type", "fmp4", str(folder / "index.m3u8")),
            )

    return _by_step(metadata, art, analyse, normalise, copyright_check, encode, ladder)


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (ffmpeg runs)."""
    me, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def timed(
    steps: dict[str, Callable[[], Any]], repeat: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Best of ``repeat`` wall times, and best of ``repeat`` CPU times, per step (the steps run
    in order: later ones use outputs of earlier ones)."""
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(repeat):
        for name, step in steps.items():
            started, cpu_started = time.perf_counter(), _cpu_s()
            step()
            wall[name] = min(wall.get(name, float("inf")), time.perf_counter() - started)
            cpu[name] = min(cpu.get(name, float("inf")), _cpu_s() - cpu_started)
    return wall, cpu


def measure_passes(work: Path, repeat: int) -> float:
    """CPU seconds of the MP3 steps' measure passes alone (decode, loudness and true peak),
    run again on their outputs: what checking each rendition's peaks costs."""
    best = float("inf")
    for _ in range(repeat):
        started = _cpu_s()
        for bitrate in SETTINGS.rendition_bitrates:
            transcode.measure(work / f"{bitrate}.mp3", "mp3", SETTINGS.cpu_task_time_limit_s)
        best = min(best, _cpu_s() - started)
    return best


def renditions_report(
    ours_cpu: dict[str, float], plain_cpu: dict[str, float], measured: float
) -> None:
    """The renditions stage in CPU seconds: against plain encodes of each output, and against
    today's three MP3 steps."""
    names = renditions()
    print("\nrenditions stage, CPU seconds (ffmpeg and Python), best of the runs above\n")
    print(f"{'step':<18}{'ours CPU s':>11}{'plain CPU s':>13}{'ratio':>8}")
    for name in names:
        mine, plain = ours_cpu[name], plain_cpu[name]
        print(f"{name:<18}{mine:>11.2f}{plain:>13.2f}{mine / plain:>8.2f}")
    ours_total = sum(ours_cpu[n] for n in names)
    plain_total = sum(plain_cpu[n] for n in names)
    ratio = ours_total / plain_total
    print(
        f"{'stage':<18}{ours_total:>11.2f}{plain_total:>13.2f}{ratio:>8.2f}"
        f"  goal <= 1.05: {'met' if ratio <= 1.05 else 'over'}"
    )
    mp3 = sum(ours_cpu[n] for n in names if n != "encode_ladder")
    print(
        f"the ladder adds {ours_cpu['encode_ladder'] / mp3:.2f}x to the three MP3 steps "
        f"(stage / MP3 steps = {ours_total / mp3:.2f})"
    )
    print(
        f"of which the MP3 steps' measure passes: {measured:.2f} s "
        f"({measured / ours_total:.0%} of the stage)"
    )


def save_state(state: dict[str, Any], path: Path) -> None:
    record = dict(state)
    for key in ("loudness", "master_loudness"):
        if key in record:
            record[key] = record[key].as_record()
    path.write_text(json.dumps(record))


def load_state(path: Path) -> dict[str, Any]:
    record = json.loads(path.read_text()) if path.exists() else {}
    for key in ("loudness", "master_loudness"):
        if key in record:
            record[key] = ffmpeg.LoudnessStats.from_record(record[key])
    return record


def _hiwater_mb() -> float:
    """This process's peak RSS. (ru_maxrss would not do: Linux carries the forking parent's
    peak across exec into it.)"""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def measure_step(track: str, work: str, name: str) -> None:
    """Run one step in this (fresh) process and print [python MB, largest ffmpeg MB]; ffmpeg's
    RSS is sampled every 20 ms."""
    folder = Path(work)
    state = load_state(folder / "state.json")
    largest = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal largest
        me = psutil.Process()
        while not done.wait(0.02):
            for child in me.children(recursive=True):
                try:
                    largest = max(largest, child.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ours(Path(track), folder, state)[name]()
    done.set()
    sampler.join()
    save_state(state, folder / "state.json")
    print(json.dumps([_hiwater_mb(), largest]))


def peak_memory(track: Path) -> dict[str, tuple[float, float]]:
    """Each step on the long input in a fresh process, in order, each once: (Python MB, largest
    ffmpeg MB). A step finds what the steps before it made in a shared folder."""
    work = Path(tempfile.mkdtemp())
    results = {}
    for name in ours(track, work):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from bench.media import measure_step; measure_step(*sys.argv[1:])",
                str(track),
                str(work),
                name,
            ],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
            check=True,
        )
        own, child = json.loads(done.stdout.strip().splitlines()[-1])
        results[name] = (own, child)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument(
        "--long-minutes", type=float, default=120.0, help="length of the memory input (0: skip)"
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        track, cover = make_inputs(folder, args.minutes)
        (folder / "ours").mkdir()
        (folder / "ref").mkdir()
        mine, mine_cpu = timed(ours(track, folder / "ours"), args.repeat)
        plain, plain_cpu = timed(references(track, cover, folder / "ref"), args.repeat)
        seconds = args.minutes * 60
        print(f"\n{args.minutes:g}-minute stereo 44.1 kHz track, best of {args.repeat}, one core\n")
        header = f"{'step':<18}{'ours s':>9}{'x realtime':>12}{'reference s':>13}{'ratio':>8}"
        print(f"{header}  goal <= 1.3")
        for name in mine:
            ratio = mine[name] / plain[name]
            print(
                f"{name:<18}{mine[name]:>9.2f}{seconds / mine[name]:>12.0f}{plain[name]:>13.2f}"
                f"{ratio:>8.2f}  {'met' if ratio <= 1.3 else 'over'}"
            )
        out = Path(SETTINGS.data_dir) / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "steps.json").write_text(json.dumps({k: round(v, 3) for k, v in mine.items()}))
        renditions_report(mine_cpu, plain_cpu, measure_passes(folder / "ours", args.repeat))
        if args.long_minutes:
            long_track = _long_input(folder, args.long_minutes)
            memory = peak_memory(long_track)
            print(
                f"\npeak resident memory on a {args.long_minutes:g}-minute stereo 48 kHz input"
                " (each step in a fresh process)\n"
            )
            print(f"{'step':<18}{'python MB':>11}{'ffmpeg MB':>11}  goal < 300 MB")
            for name, (own, child) in memory.items():
                print(f"{name:<18}{own:>11.0f}{child:>11.0f}  {'met' if own < 300 else 'over'}")
    return 0


def _long_input(folder: Path, minutes: float) -> Path:
    """Two hours of stereo 48 kHz FLAC with cover art, looped from a minute of music (quick to
    make)."""
    loop = folder / "minute.wav"
    pcm = synthesise(60, seed=99)
    write_pcm(pcm, loop, "-ar", "48000")
    long_track = folder / "long.flac"
    _run("-stream_loop", str(int(minutes) - 1), "-i", str(loop), "-c:a", "flac", str(long_track))
    from mutagen.flac import FLAC, Picture

    flac, cover = FLAC(long_track), Picture()
    cover.type, cover.mime, cover.data = 3, "image/jpeg", (folder / "cover.jpg").read_bytes()
    flac.add_picture(cover)  # the artwork step has its cover to resize
    flac.save()
    return long_track


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
