"""Copyright check accuracy and speed (`make bench-copyright`).

A catalogue of generated music-like works (melody, harmony, bass, drums; different for every
seed), and queries made the way real uploads are: re-encoded at 128 kbps, cut to 10 s and 5 s
excerpts from random offsets, with noise at 10 dB SNR or 6 dB of gain either way; plus works
that are not in the catalogue. Every query goes through an MP3 encode and ffmpeg decode, then
the production fingerprint and matcher. Accuracy uses an in-memory postings index (the matcher
does not care where postings come from); the DynamoDB layout's own cost is measured apart, on
the emulator, for one 5-minute work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trackflow.media import fingerprint as fp
from trackflow.media.ffmpeg import decode_args, read_pcm
from trackflow.media.samples import RATE, synthesise, write_pcm
from trackflow.settings import Settings

QUERY_KINDS = (
    "reencode_128k",
    "excerpt_10s",
    "excerpt_5s",
    "excerpt_10s_noise",
    "excerpt_5s_noise",
    "excerpt_10s_gain+6",
    "excerpt_10s_gain-6",
    "excerpt_5s_gain+6",
    "excerpt_5s_gain-6",
)


def mp3_roundtrip(pcm: np.ndarray, workdir: Path, bitrate: str = "128k") -> np.ndarray:
    """Encode stereo PCM to MP3 and decode it to mono 11,025 Hz, as an upload would be."""
    mp3 = workdir / f"q{os.getpid()}_{time.monotonic_ns()}.mp3"
    write_pcm(pcm, mp3, "-c:a", "libmp3lame", "-b:a", bitrate)
    blocks = read_pcm(
        decode_args(mp3, "mp3", sample_rate=fp.SAMPLE_RATE, channels=1),
        channels=1,
        block_frames=1 << 17,
        timeout=600,
    )
    mono = np.concatenate(list(blocks))[:, 0]
    mp3.unlink()
    return mono


def reference_landmarks(seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    return _landmarks_of(synthesise(seconds, seed))


def _landmarks_of(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of the reference recording itself (44.1 kHz stereo -> 11,025 Hz mono)."""
    from scipy.signal import resample_poly

    return fp.fingerprint([resample_poly(pcm.mean(axis=1), 1, 4).astype(np.float32)])


def _modify(pcm: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind.endswith("_noise"):
        level = np.sqrt(np.mean(pcm**2))
        return pcm + rng.standard_normal(pcm.shape).astype(np.float32) * level / np.sqrt(10)
    if "gain" in kind:
        return pcm * 10 ** (float(kind.rsplit("gain", 1)[1]) / 20)
    return pcm


@dataclass
class Query:
    kind: str
    work: int | None  # the catalogue work it comes from, or None for unrelated music
    offset_s: float
    hashes: np.ndarray
    times: np.ndarray


def make_source(
    args: tuple[int, float, int | None, str, int],
) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[Query]]:
    """One source recording, synthesised once: its reference landmarks (for a catalogue work)
    and every query made from it."""
    seed, seconds, work, workdir, rng_seed = args
    rng = np.random.default_rng(rng_seed)
    pcm = synthesise(seconds, seed)
    reference = _landmarks_of(pcm) if work is not None else None
    kinds = QUERY_KINDS if work is not None else ("reencode_128k", "excerpt_10s", "excerpt_5s")
    queries = []
    for kind in kinds:
        if kind == "reencode_128k":
            start, clip = 0.0, pcm
        else:
            length = 10.0 if kind.startswith("excerpt_10s") else 5.0
            start = float(rng.uniform(0, seconds - length))
            clip = pcm[int(start * RATE) : int((start + length) * RATE)]
        mono = mp3_roundtrip(_modify(clip, kind, rng), Path(workdir))
        queries.append(Query(kind, work, start, *fp.fingerprint([mono])))
    return reference, queries


def tally_key(query: Query) -> str:
    return query.kind if query.work is not None else "not_in_catalogue"


Matcher = Callable[[np.ndarray, np.ndarray], list[fp.Match]]


def judge_queries(queries: list[Query], matcher: Matcher, policy: fp.MatchPolicy) -> dict:
    results: dict[str, Counter] = {}
    scores: dict[str, list[int]] = {}
    for query in queries:
        matches = matcher(query.hashes, query.times)
        best = matches[0] if matches else None
        tally = results.setdefault(
            query.kind if query.work is not None else "not_in_catalogue", Counter()
        )
        tally["queries"] += 1
        scores.setdefault(tally_key(query), []).append(
            next((m.score for m in matches if m.work == query.work), 0)
            if query.work is not None
            else (best.score if best else 0)
        )
        if query.work is None:
            tally["false_confident"] += bool(best and best.is_confident(policy))
            tally["weak"] += bool(best and not best.is_confident(policy))
            continue
        right = best is not None and best.work == query.work
        if right and best.is_confident(policy):
            located = abs(best.work_offset_s - best.upload_offset_s - query.offset_s) < 0.25
            tally["confident"] += 1
            tally["located"] += located
        elif right:
            tally["weak"] += 1
        elif best is not None:
            tally["wrong_work"] += 1
    for kind, values in scores.items():
        results[kind]["score_p5"] = int(np.percentile(values, 5))
        results[kind]["score_max"] = int(max(values))
    return results


def speed(index: fp.LandmarkIndex, workdir: Path, seed: int) -> dict[str, float]:
    """One core: decode a 5-minute MP3 upload, fingerprint it, match it against the index."""
    pcm = synthesise(300.0, seed)
    mp3 = workdir / "five_minutes.mp3"
    write_pcm(pcm, mp3, "-b:a", "192k")
    started = time.perf_counter()
    hashes, times = fp.fingerprint_file(mp3, "mp3", timeout=600)
    fingerprinted = time.perf_counter()
    fp.match_landmarks(hashes, times, index.lookup)
    done = time.perf_counter()
    return {
        "fingerprint_s": fingerprinted - started,
        "match_s": done - fingerprinted,
        "total_s": done - started,
        "landmarks": len(hashes),
    }


def published_matcher(
    parts: list[tuple[int, np.ndarray, np.ndarray]], sampling: int, policy: fp.MatchPolicy
) -> Matcher:
    """The same works joined the way published tracks join: one landmark hash in ``sampling``
    indexed, a nominated work compared on all of its landmarks."""
    sampled = fp.LandmarkIndex([(w, *fp.sample_landmarks(h, t, sampling)) for w, h, t in parts])
    everything = {w: (h, t) for w, h, t in parts}
    nothing = fp.LandmarkIndex([])
    return lambda h, t: fp.match_catalogue(
        h, t, nothing.lookup, sampled.lookup, sampling, everything.get, policy
    )


def scaled_index(parts: list[tuple[int, np.ndarray, np.ndarray]], works: int) -> fp.LandmarkIndex:
    """A catalogue of ``works`` works: the real ones plus copies whose hashes are permuted (XOR
    with a random mask), so they have the same landmark statistics and match nothing real."""
    rng = np.random.default_rng(7)
    scaled = list(parts)
    while len(scaled) < works:
        _, h, t = parts[len(scaled) % len(parts)]
        mask = np.uint32(rng.integers(1, 1 << 23))
        scaled.append((len(scaled) + 1, (h ^ mask) & np.uint32((1 << 23) - 1), t))
    return fp.LandmarkIndex(scaled)


def dynamodb_cost(hashes: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """Ingest one 5-minute work into the DynamoDB layout (as a reference work, and sampled as a
    published track) and look its hashes up, on an emulator of our own (the emulator answers
    each request in milliseconds; DynamoDB in a few)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(
        {
            "TRACKFLOW_ENV": "bench",
            "TRACKFLOW_EMULATOR_PORT": str(port),
            "TRACKFLOW_AWS_TARGET": "embedded",
        }
    )
    os.environ.pop("TRACKFLOW_AWS_ENDPOINT_URL", None)
    from trackflow_devstack.emulator import EmulatorServer

    from trackflow.adapters import aws
    from trackflow.adapters.state.catalogue import Catalogue, WorkStatus, chunk_count
    from trackflow.operations.bootstrap import bootstrap

    settings = Settings()
    server = EmulatorServer(port=port).start()
    try:
        bootstrap(settings)
        catalogue = Catalogue(
            aws.client("dynamodb", settings),
            settings.table("catalogue"),
            settings.table("fingerprints"),
            threads=16,
        )
        cost: dict[str, float] = {}
        for kind, sampling in (("reference", 1), ("published", settings.track_index_sampling)):
            indexed = fp.sample_landmarks(hashes, times, sampling)
            chunks = chunk_count(indexed[0])
            work = catalogue.create(title=kind, owner="bench", status=WorkStatus.INDEXING)
            started = time.perf_counter()
            for chunk in range(chunks):
                catalogue.index_chunk(work, *indexed, chunk, chunks)
            cost[f"{kind}_hashes"] = float(len(np.unique(indexed[0])))
            cost[f"{kind}_ingest_s"] = time.perf_counter() - started
        started = time.perf_counter()
        catalogue.lookup(hashes)
        cost["lookup_s"] = time.perf_counter() - started
    finally:
        server.stop()
    return cost


def run(
    works: int, negatives: int, seconds: float, scale_to: int, processes: int, with_dynamodb: bool
) -> dict:
    policy = fp.MatchPolicy()
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(processes) as pool:
        started = time.perf_counter()
        jobs = [(10_000 + n, seconds, n + 1, scratch, n) for n in range(works)]
        jobs += [(90_000 + n, seconds, None, scratch, 50_000 + n) for n in range(negatives)]
        made = list(pool.map(make_source, jobs, chunksize=4))
        generated_s = time.perf_counter() - started
    parts = [(n + 1, *reference) for n, (reference, _) in enumerate(made) if reference]
    index = fp.LandmarkIndex(parts)
    queries = [q for _, batch in made for q in batch]
    results = judge_queries(
        queries, lambda h, t: fp.match_landmarks(h, t, index.lookup, policy), policy
    )
    sampling = Settings().track_index_sampling
    published = judge_queries(queries, published_matcher(parts, sampling, policy), policy)
    with tempfile.TemporaryDirectory() as scratch:
        timing = speed(scaled_index(parts, scale_to), Path(scratch), seed=424242)
    report = {
        "results": results,
        "published": published,
        "track_index_sampling": sampling,
        "speed": timing,
        "generated_s": generated_s,
        "works": works,
        "queries": len(queries),
        "scale_to": scale_to,
        "landmarks_per_s": float(np.mean([len(h) for _, h, _ in parts]) / seconds),
    }
    if with_dynamodb:
        report["dynamodb"] = dynamodb_cost(*reference_landmarks(777, 300.0))
    return report


GOALS = {"reencode_128k": 0.99, "excerpt_10s": 0.99, "excerpt_5s_noise": 0.95}
# Published tracks join the catalogue so that whole re-uploads are caught.
PUBLISHED_GOALS = {"reencode_128k": 0.99, "excerpt_10s": 0.95}


def print_recall(results: dict, goals: dict[str, float]) -> None:
    print(
        f"{'query':<22}{'queries':>8}{'recall':>9}{'located':>9}{'weak':>6}{'wrong':>7}"
        f"{'score p5':>10}  goal"
    )
    for kind, tally in sorted(results.items()):
        n = tally["queries"]
        if kind == "not_in_catalogue":
            continue
        recall = tally["confident"] / n
        goal = goals.get(kind)
        verdict = (
            "" if goal is None else (f">= {goal:.0%} " + ("met" if recall >= goal else "MISSED"))
        )
        print(
            f"{kind:<22}{n:>8}{recall:>9.1%}{tally['located'] / n:>9.1%}{tally['weak']:>6}"
            f"{tally['wrong_work']:>7}{tally['score_p5']:>10}  {verdict}"
        )
    negative = results.get("not_in_catalogue", Counter())
    n = negative["queries"] or 1
    print(
        f"{'not_in_catalogue':<22}{negative['queries']:>8}  false accusations: "
        f"{negative['false_confident']} ({negative['false_confident'] / n:.2%}), "
        f"held for review: {negative['weak']} ({negative['weak'] / n:.2%}); highest score "
        f"{negative['score_max']}  goal: 0"
    )


def print_report(report: dict) -> None:
    print(
        f"\ncatalogue: {report['works']} generated works, "
        f"{report['landmarks_per_s']:.0f} landmarks a second; {report['queries']} queries "
        f"(all made in {report['generated_s']:.0f} s)\n"
    )
    print_recall(report["results"], GOALS)
    print(
        f"\nthe same works as published tracks, one landmark hash in "
        f"{report['track_index_sampling']} indexed:"
    )
    print_recall(report["published"], PUBLISHED_GOALS)
    s = report["speed"]
    print(
        f"\n5-minute upload against {report['scale_to']} works, one core: "
        f"{s['total_s']:.2f} s (fingerprint {s['fingerprint_s']:.2f} s with decode, "
        f"match {s['match_s']:.2f} s; {s['landmarks']} landmarks); goal < 2 s: "
        f"{'met' if s['total_s'] < 2 else 'MISSED'}"
    )
    if "dynamodb" in report:
        d = report["dynamodb"]
        print(
            f"DynamoDB layout on the emulator, one 5-minute work: ingest as a reference work "
            f"{d['reference_ingest_s']:.1f} s ({d['reference_hashes']:.0f} hashes), as a "
            f"published track {d['published_ingest_s']:.1f} s ({d['published_hashes']:.0f} "
            f"hashes); lookup of all its hashes {d['lookup_s']:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=200)
    parser.add_argument("--negatives", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each work")
    parser.add_argument("--scale-to", type=int, default=1000, help="catalogue size for speed")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-dynamodb", action="store_true")
    args = parser.parse_args(argv)
    report = run(
        args.works,
        args.negatives,
        args.seconds,
        args.scale_to,
        args.processes,
        not args.no_dynamodb,
    )
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
