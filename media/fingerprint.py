"""Landmark audio fingerprints (Wang 2003, as in Shazam, Dejavu and audfprint) and the matcher.

A fingerprint is a set of hashes, each made of two spectral peaks (the anchor's frequency, the
frequency difference and the time difference to a later peak) and stamped with the anchor's time.
Peaks survive re-encoding, gain and a fair amount of noise, and pairs of them are specific, so a
recording is recognised from any few seconds of it: a match is many hashes that agree on one time
offset between the upload and a reference work, not a count of shared hashes.

Everything here is pure numpy over PCM blocks; the catalogue's storage is a function passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

__all__ = [
    "FRAME_SECONDS",
    "LandmarkExtractor",
    "LandmarkIndex",
    "Match",
    "MatchPolicy",
    "Postings",
    "fingerprint",
    "match_catalogue",
    "match_landmarks",
    "sample_landmarks",
]

SAMPLE_RATE = 11_025
N_FFT = 1024
HOP = 256
FRAME_SECONDS = HOP / SAMPLE_RATE  # 23.2 ms
MIN_BIN, MAX_BIN = 8, 480  # ~90 Hz to ~5.2 kHz: below is rumble, above is lost by encoders
PEAK_TIME_RADIUS = 8  # frames each side a peak must dominate
PEAK_FREQ_RADIUS = 12  # bins each side
PEAKS_PER_SECOND = 24
FAN_OUT = 6
MAX_DT = 63  # frames: 1.46 s
MAX_DF = 127  # bins
CHUNK_FRAMES = 2048  # spectrogram frames processed at a time (47 s)

_WINDOW = np.hanning(N_FFT).astype(np.float32)


def _hash(f1: np.ndarray, df: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """23-bit landmark hash: anchor bin (9 bits), frequency step (8 bits), time step (6 bits)."""
    return (
        (f1.astype(np.uint32) << 14)
        | (((df + 128) & 0xFF).astype(np.uint32) << 6)
        | (dt.astype(np.uint32) & 0x3F)
    )


class LandmarkExtractor:
    """Streams mono PCM at 11,025 Hz in, landmark hashes and times out; memory is one chunk
    of spectrogram plus the peaks (a few hundred bytes a second)."""

    def __init__(self) -> None:
        self._samples = np.empty(0, dtype=np.float32)
        self._frames: list[np.ndarray] = []  # log-magnitude spectra not yet searched for peaks
        self._first_frame = 0  # global index of self._frames[0]
        self._peak_times: list[np.ndarray] = []
        self._peak_bins: list[np.ndarray] = []

    def add(self, pcm: np.ndarray) -> None:
        self._samples = np.concatenate([self._samples, pcm.reshape(-1).astype(np.float32)])
        count = (len(self._samples) - N_FFT) // HOP + 1 if len(self._samples) >= N_FFT else 0
        if count <= 0:
            return
        view = np.lib.stride_tricks.sliding_window_view(self._samples, N_FFT)[::HOP][:count]
        spectrum = np.abs(np.fft.rfft(view * _WINDOW, axis=1)).astype(np.float32)
        self._frames.append(20 * np.log10(spectrum + 1e-6))
        self._samples = self._samples[count * HOP :]
        buffered = sum(len(f) for f in self._frames)
        if buffered >= CHUNK_FRAMES + 2 * PEAK_TIME_RADIUS:
            self._search(final=False)

    def _search(self, *, final: bool) -> None:
        """Find peaks in the buffered spectrogram, keeping a margin for the next chunk's search."""
        if not self._frames:
            return
        spec = np.concatenate(self._frames)
        keep_from = len(spec) if final else len(spec) - 2 * PEAK_TIME_RADIUS
        start = 0 if self._first_frame == 0 else PEAK_TIME_RADIUS
        times, bins = _peaks(spec, start, keep_from)
        self._peak_times.append(times + self._first_frame)
        self._peak_bins.append(bins)
        tail = spec[keep_from - PEAK_TIME_RADIUS :] if not final else spec[:0]
        self._first_frame += keep_from - PEAK_TIME_RADIUS if not final else len(spec)
        self._frames = [tail] if len(tail) else []

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, anchor times in frames), both uint32, sorted by time."""
        if len(self._samples) and (self._frames or len(self._samples) >= N_FFT // 2):
            self.add(np.zeros(N_FFT - len(self._samples) % HOP, dtype=np.float32))
        self._search(final=True)
        times = np.concatenate(self._peak_times) if self._peak_times else np.empty(0, np.int64)
        bins = np.concatenate(self._peak_bins) if self._peak_bins else np.empty(0, np.int64)
        return _pair(times.astype(np.int64), bins.astype(np.int64))


def _peaks(spec: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of the log spectrogram between frames ``start`` and ``stop``, thinned to the
    strongest PEAKS_PER_SECOND in each second."""
    band = spec[:, MIN_BIN:MAX_BIN]
    local_max = maximum_filter(
        band, size=(2 * PEAK_TIME_RADIUS + 1, 2 * PEAK_FREQ_RADIUS + 1), mode="nearest"
    )
    # A peak stands out from its frame's typical level, so silence and flat noise give none.
    floor = np.median(band, axis=1, keepdims=True) + 10.0
    is_peak = (band == local_max) & (band > floor)
    is_peak[:start] = False
    is_peak[stop:] = False
    times, bins = np.nonzero(is_peak)
    if not len(times):
        return times, bins
    strength = band[times, bins]
    per_second = round(1 / FRAME_SECONDS)
    second = times // per_second
    order = np.lexsort((-strength, second))
    times, bins, second = times[order], bins[order], second[order]
    rank = np.arange(len(times)) - np.searchsorted(second, second, side="left")
    keep = rank < PEAKS_PER_SECOND
    times, bins = times[keep], bins[keep] + MIN_BIN
    order = np.lexsort((bins, times))
    return times[order], bins[order]


def _pair(times: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair each peak with its FAN_OUT nearest later peaks inside the target zone."""
    count = len(times)
    hashes, anchor_times, anchors = [], [], []
    for step in range(1, count):
        dt = times[step:] - times[:-step]
        if dt.min() > MAX_DT:  # peaks are sorted by time: later steps only reach further
            break
        df = bins[step:] - bins[:-step]
        ok = (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
        hashes.append(_hash(bins[:-step][ok], df[ok], dt[ok]))
        anchor_times.append(times[:-step][ok])
        anchors.append(np.flatnonzero(ok))
    if not hashes:
        return np.empty(0, np.uint32), np.empty(0, np.uint32)
    anchor = np.concatenate(anchors)
    # Partners were gathered nearest first; keep each anchor's first FAN_OUT.
    order = np.argsort(anchor, kind="stable")
    anchor = anchor[order]
    rank = np.arange(len(anchor)) - np.searchsorted(anchor, anchor, side="left")
    keep = order[rank < FAN_OUT]
    keep.sort()
    all_hashes = np.concatenate(hashes)[keep]
    all_times = np.concatenate(anchor_times)[keep]
    by_time = np.argsort(all_times, kind="stable")
    return all_hashes[by_time].astype(np.uint32), all_times[by_time].astype(np.uint32)


def fingerprint(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor times of mono 11,025 Hz PCM given as blocks."""
    extractor = LandmarkExtractor()
    for block in blocks:
        extractor.add(block)
    return extractor.finish()


def sample_landmarks(
    hashes: np.ndarray, times: np.ndarray, one_in: int
) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks whose hash falls in a fixed 1/``one_in`` of the hash space.

    Sampling by hash value keeps the same hashes of every recording, so a work indexed sparsely
    still lines up with a fully fingerprinted upload: one_in times fewer index entries, and
    scores about one_in times lower against that work."""
    if one_in <= 1:
        return hashes, times
    # Knuth's multiplicative hash spreads neighbouring values (hashes that differ only in their
    # time step) over the whole range, so the share kept is even across the spectrum.
    mixed = (hashes.astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    keep = mixed < np.uint64((1 << 32) // one_in)
    return hashes[keep], times[keep]


# --- matching -------------------------------------------------------------------------------
# Postings: for each hash, arrays of (work number, anchor time in the work).
Postings = Callable[[np.ndarray], Mapping[int, tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class MatchPolicy:
    window_s: float = 10.0  # aligned hashes are counted in sliding windows of this length
    confident: int = 40  # distinct landmarks agreeing in one window for a confident match
    weak: int = 30  # ... for a match worth a human's look
    nominate: int = 4  # ... of a work's sample, for comparing the upload with all its landmarks
    tolerance_frames: int = 1  # offsets this close count as one (frame jitter)
    gap_s: float = 3.0  # aligned hashes further apart than this start a new matched region


@dataclass(frozen=True)
class Match:
    work: int
    score: int  # aligned hashes in the best window
    upload_offset_s: float
    work_offset_s: float
    matched_s: float
    confidence: float  # 0..1, reaching 1 at the confident threshold

    def is_confident(self, policy: MatchPolicy) -> bool:
        return self.score >= policy.confident


class LandmarkIndex:
    """Postings of a few works held in memory, sorted by hash: the lookup the catalogue answers
    (for one candidate work's full landmarks, for tests and for benchmarks)."""

    def __init__(self, works: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> None:
        parts = list(works)
        none = np.empty(0, np.int64)
        hashes = np.concatenate([h.astype(np.int64) for _, h, _ in parts] or [none])
        numbers = np.concatenate([np.full(len(h), w, np.int64) for w, h, _ in parts] or [none])
        times = np.concatenate([t.astype(np.int64) for _, _, t in parts] or [none])
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.works, self.times = hashes[order], numbers[order], times[order]

    def lookup(self, hashes: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        unique = np.unique(hashes)
        left = np.searchsorted(self.hashes, unique, "left")
        right = np.searchsorted(self.hashes, unique, "right")
        return {
            int(h): (self.works[a:b], self.times[a:b])
            for h, a, b in zip(unique.tolist(), left.tolist(), right.tolist(), strict=True)
            if b > a
        }


def match_catalogue(
    hashes: np.ndarray,
    times: np.ndarray,
    lookup: Postings,
    sampled_lookup: Postings,
    sampling: int,
    all_landmarks: Callable[[int], tuple[np.ndarray, np.ndarray] | None],
    policy: MatchPolicy = MatchPolicy(),
    limit: int = 5,
) -> list[Match]:
    """The works that the landmarks match, best first: works indexed in full (the reference
    catalogue), and works indexed by a sample of one hash in ``sampling`` (published tracks),
    each of which is judged on all of its landmarks (``all_landmarks``, None when the work is
    gone) once its sample nominates it. A sample costs the index ``sampling`` times fewer
    writes, and the verdict stands on as many landmarks as a fully indexed work's."""
    found = match_landmarks(hashes, times, lookup, policy, limit)
    sampled = sample_landmarks(hashes, times, sampling)
    for nominee in match_landmarks(*sampled, sampled_lookup, policy, limit, floor=policy.nominate):
        landmarks = all_landmarks(nominee.work)
        if landmarks is not None:
            index = LandmarkIndex([(nominee.work, *landmarks)])
            found += match_landmarks(hashes, times, index.lookup, policy, 1)
    best: dict[int, Match] = {}
    for match in found:
        if match.work not in best or match.score > best[match.work].score:
            best[match.work] = match
    return sorted(best.values(), key=lambda m: -m.score)[:limit]


def match_landmarks(
    hashes: np.ndarray,
    times: np.ndarray,
    lookup: Postings,
    policy: MatchPolicy = MatchPolicy(),
    limit: int = 5,
    *,
    floor: int | None = None,
) -> list[Match]:
    """The works that the landmarks match, best first, each scored by its densest window; those
    under ``floor`` aligned landmarks (the policy's weak match) are left out."""
    if not len(hashes):
        return []
    order = np.argsort(hashes, kind="stable")
    sorted_hashes, sorted_times = hashes[order], times[order].astype(np.int64)
    unique, starts = np.unique(sorted_hashes, return_index=True)
    ends = np.append(starts[1:], len(sorted_hashes))
    postings = lookup(unique)
    work_parts, offset_parts, query_parts, hash_parts = [], [], [], []
    for value, start, end in zip(unique.tolist(), starts.tolist(), ends.tolist(), strict=True):
        found = postings.get(value)
        if found is None:
            continue
        works, ref_times = found
        query_times = sorted_times[start:end]
        # every pairing of a query occurrence with a reference occurrence
        work_parts.append(np.repeat(works, len(query_times)))
        offset_parts.append(
            (ref_times.astype(np.int64)[:, None] - query_times[None, :]).reshape(-1)
        )
        query_parts.append(np.tile(query_times, len(works)))
        hash_parts.append(np.full(len(works) * len(query_times), value, dtype=np.int64))
    if not work_parts:
        return []
    return _best_alignments(
        np.concatenate(work_parts),
        np.concatenate(offset_parts),
        np.concatenate(query_parts),
        np.concatenate(hash_parts),
        policy,
        limit,
        policy.weak if floor is None else floor,
    )


def _best_alignments(
    works: np.ndarray,
    offsets: np.ndarray,
    query_times: np.ndarray,
    query_hashes: np.ndarray,
    policy: MatchPolicy,
    limit: int,
    floor: int,
) -> list[Match]:
    """For each candidate (work, offset), score its densest window by the number of *distinct*
    landmarks that agree: a drum loop repeating one landmark on every beat counts once, while
    a shared recording agrees on many different ones."""
    tol = policy.tolerance_frames
    quantised = offsets // (2 * tol + 1)
    keys = (works.astype(np.int64) << 32) | (quantised & 0xFFFFFFFF)
    candidates, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts)[: limit * 8]
    window = round(policy.window_s / FRAME_SECONDS)
    best: dict[int, Match] = {}
    for key, count in zip(candidates[order], counts[order], strict=True):
        if count < floor:
            break
        work = int(key >> 32)
        bucket = int(key & 0xFFFFFFFF)
        bucket = bucket - (1 << 32) if bucket >= 1 << 31 else bucket
        near = (works == work) & (np.abs(quantised - bucket) <= 1)
        aligned_offsets = offsets[near]
        centre = int(np.median(aligned_offsets))
        aligned = near & (np.abs(offsets - centre) <= tol)
        q = np.unique(query_times[aligned])
        distinct = _first_time_of_each_hash(query_times[aligned], query_hashes[aligned])
        score, start = _densest_window(distinct, window)
        if score < floor:
            continue
        first, last = _region(
            q, int(np.searchsorted(q, distinct[start])), round(policy.gap_s / FRAME_SECONDS)
        )
        match = Match(
            work=work,
            score=score,
            upload_offset_s=round(float(q[first]) * FRAME_SECONDS, 2),
            work_offset_s=round(float(q[first] + centre) * FRAME_SECONDS, 2),
            matched_s=round(float(q[last] - q[first]) * FRAME_SECONDS, 1),
            confidence=round(min(1.0, score / policy.confident), 3),
        )
        if work not in best or match.score > best[work].score:
            best[work] = match
    return sorted(best.values(), key=lambda m: -m.score)[:limit]


def _first_time_of_each_hash(times: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Sorted times at which each distinct hash first agrees."""
    order = np.argsort(times, kind="stable")
    _, first = np.unique(hashes[order], return_index=True)
    return np.sort(times[order][first])


def _densest_window(times: np.ndarray, window: int) -> tuple[int, int]:
    """Most distinct aligned anchor times inside any window of ``window`` frames, and its start."""
    ends = np.searchsorted(times, times + window, side="left")
    counts = ends - np.arange(len(times))
    best = int(np.argmax(counts))
    return int(counts[best]), best


def _region(times: np.ndarray, start: int, gap: int) -> tuple[int, int]:
    """First and last index of the run of aligned anchors (no gap over ``gap`` frames) that
    holds index ``start``: where the matched passage begins and ends in the upload."""
    breaks = np.flatnonzero(np.diff(times) > gap)  # a run ends at each break
    first = int(breaks[breaks < start][-1] + 1) if (breaks < start).any() else 0
    last = int(breaks[breaks >= start][0]) if (breaks >= start).any() else len(times) - 1
    return first, last
