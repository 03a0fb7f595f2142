"""Fingerprints that survive tempo, pitch and speed changes: quads of spectral peaks.

Today's landmarks (``media.fingerprint``) hash absolute frequencies and time steps, so a pitch
shift of a semitone or a tempo change of a few per cent leaves no hash in common. Here four peaks
A, B, C, D make a *quad* (Sonnleitner and Widmer, "Robust quad-based audio fingerprinting",
IEEE/ACM TASLP 24(3), 2016, doi:10.1109/TASLP.2015.2509248): A and B span a box, C and D lie in
it, and the hash is C and D in the box's own coordinates (A at (0, 0), B at (1, 1)). A tempo
change scales every time step by one factor and a pitch shift every frequency by one factor (on
a linear frequency axis, about 0 Hz), so the coordinates do not move; a speed change does both.
One more coordinate is A's frequency over the box's height, which a pitch shift does not change
either and which separates quads from different registers.

The index holds few quads per second of a work (sparse peaks, one quad per root, its peaks chosen
by strength); an upload is hashed densely (more peaks, the strongest few boxes of each root and
several C, D choices in each), so the work's quads are among the upload's despite peaks that come
and go. Hashes are real numbers: a key-value store holds each quad under its quantised cell, and
a query asks for the cells within ``tolerances`` of its own (``query_cells``), then keeps
postings within the tolerance of the exact hash. Figures behind the settings:
docs/performance.md.

A hit carries the two boxes' widths and heights, hence a time factor and a frequency factor; a
work is a candidate only when many hits agree on both factors and on one line from work time to
upload time (RANSAC over the hits), and a candidate is accepted only when the work's peaks, mapped
into the upload with those factors, are found there (the verification the paper calls essential
for precision; it also needs the peaks, which a store keeps apart from the postings).

Pure numpy over mono PCM at ``SAMPLE_RATE``; where postings come from is a function passed in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.fft
from scipy.ndimage import maximum_filter

from trackflow.media import fingerprint as fp

__all__ = [
    "FRAME_SECONDS",
    "QUERY",
    "REFERENCE",
    "InvariantMatch",
    "InvariantPolicy",
    "PeakParams",
    "Peaks",
    "QuadIndex",
    "Quads",
    "Upload",
    "analyse_track",
    "analyse_upload",
    "find_peaks",
    "match_quads",
    "merged_index",
    "merged_lookup",
    "pack_work",
    "quad_keys",
    "quads",
    "query_cells",
    "reference_quads",
    "tolerances",
    "unpack_work",
    "verify",
]

SAMPLE_RATE = fp.SAMPLE_RATE  # 11,025 Hz, the rate uploads are already decoded at
N_FFT = fp.N_FFT
HOP = 128  # half of the landmarks' hop: hash coordinates are ratios of time steps
FRAME_SECONDS = HOP / SAMPLE_RATE
MIN_BIN, MAX_BIN = fp.MIN_BIN, fp.MAX_BIN
CHUNK_FRAMES = 4096  # spectrogram frames held at a time

# Boxes: B is 0.25 to 1.5 s after A in a work (the upload's window widens by the largest time
# factor allowed), and at least MIN_HEIGHT bins above or below it, so that a coordinate's error
# (a fraction of a bin or a frame) stays small against the box.
MIN_WIDTH = round(0.25 / FRAME_SECONDS)
MAX_WIDTH = round(1.5 / FRAME_SECONDS)
MIN_HEIGHT = 24
# Time and frequency factors searched and accepted: 1/1.12 to 1.12, which holds tempo and speed
# changes of 8 % and pitch shifts of 1.5 semitones (a factor of 1.09), alone or combined as the
# bench combines them. A wider search let unrelated music align by chance at the far factors
# (docs/performance.md, "The copyright check at full scale").
MAX_FACTOR = 1.12
MAX_STEP = 48  # later peaks considered as B for one A
INNER_MARGIN = 0.1  # C and D lie this far inside a work's box (a share of its width and height)
QUADS_PER_ROOT = 1  # quads a work keeps for each A (strongest B first)
QUERY_BOXES = 4  # boxes an upload keeps for each A (strongest B first)
QUERY_INNER = 4  # an upload's C, D are any two of the QUERY_INNER strongest in a box
# How far an upload's hash may be from the work's, per coordinate, at least. On the bench's
# evasions a peak moves a frame or so in time and half a bin in frequency, so the time
# coordinates get the wider tolerance, and the last coordinate (a log of A's frequency) one that
# widens for low A (``tolerances``), where half a bin is a large share.
TOLERANCE = np.array([0.02, 0.009, 0.02, 0.009, 0.02], np.float32)
A_SLACK = 0.7  # bins: A's frequency error that the last coordinate's tolerance allows for
# Cells a quad is stored under: about three tolerances wide, so that an upload's quad asks for a
# few cells (its own and the neighbours it is near), each holding few postings it cannot match.
CELLS = np.array([16, 40, 16, 40], np.int64)  # quantisation of the four box coordinates
LOG_RATIO_CELL = 0.15  # octaves: quantisation of log2(A's frequency / box height)
LOG_RATIO_RANGE = (-5.0, 4.5)
ASK_BATCH = 1 << 17  # cells asked of the index at a time (memory stays bounded)


@dataclass(frozen=True)
class PeakParams:
    time_radius: int  # frames each side a peak must dominate
    freq_radius: int  # bins each side
    per_second: int  # strongest peaks kept in each second


# A work keeps few strong peaks (its quads are index entries); an upload keeps more, so that the
# work's peaks are among them after re-encoding, noise or a change of the strongest partials.
# The upload's neighbourhood is the work's shrunk by about the largest factor (a work's peak
# stays a maximum when the upload is scaled down by 0.8): a smaller one let weak maxima crowd
# the work's peaks out of the upload's strongest of each second in dense music.
# Seven a second (not six) gives a 10 s excerpt enough quads to agree on; more would grow every
# worker host's copy of the index.
REFERENCE = PeakParams(time_radius=10, freq_radius=10, per_second=7)
QUERY = PeakParams(time_radius=9, freq_radius=9, per_second=14)
# Verification looks for the work's peaks among all of the upload's local maxima.
VERIFY = PeakParams(time_radius=3, freq_radius=3, per_second=80)


class Peaks(NamedTuple):
    times: np.ndarray  # float64 frames, sorted
    bins: np.ndarray  # float64 FFT bins, interpolated between bins
    levels: np.ndarray  # float32 dB: quads are grouped by strength, which the upload keeps


_WINDOW = np.hanning(N_FFT).astype(np.float32)


def _spectrogram(pcm: np.ndarray, first: int, count: int) -> np.ndarray:
    """Log-magnitude frames ``first`` .. ``first + count`` (those that exist), MIN_BIN-1 to
    MAX_BIN inclusive (one bin of margin each side for interpolation)."""
    first = max(first, 0)
    start, stop = first * HOP, (first + count - 1) * HOP + N_FFT
    samples = pcm[start:stop]
    if len(samples) < N_FFT:
        return np.empty((0, MAX_BIN - MIN_BIN + 2), np.float32)
    view = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    # scipy's FFT keeps float32 where numpy's computes in float64: several times faster
    spectrum = np.abs(scipy.fft.rfft(view * _WINDOW, axis=1))[:, MIN_BIN - 1 : MAX_BIN + 1]
    return (20 * np.log10(spectrum + 1e-6)).astype(np.float32)


def find_peaks(pcm: np.ndarray, params: PeakParams) -> Peaks:
    """Spectral peaks of mono PCM at SAMPLE_RATE, with time and frequency refined by a parabola
    through the log magnitudes either side (a fraction of a bin matters: hash coordinates are
    ratios of differences of a few tens of bins)."""
    return find_peak_sets(pcm, (params,))[0]


def find_peak_sets(pcm: np.ndarray, sets: tuple[PeakParams, ...]) -> list[Peaks]:
    """``find_peaks`` for several settings over one spectrogram and one maximum filter (the
    smallest neighbourhood's: a larger one's maximum is gathered from it at the few points
    that pass the smaller test, which costs far less than filtering again)."""
    pcm = np.asarray(pcm, np.float32).reshape(-1)
    frames = (len(pcm) - N_FFT) // HOP + 1 if len(pcm) >= N_FFT else 0
    margin = max(p.time_radius for p in sets) + 1
    per_second = round(1 / FRAME_SECONDS)
    found: list[tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = [
        ([], [], []) for _ in sets
    ]
    # Chunks are whole seconds long, so each second's strongest peaks are chosen in one chunk.
    chunk = CHUNK_FRAMES // per_second * per_second
    for begin in range(0, frames, chunk):
        end = min(begin + chunk, frames)
        spec = _spectrogram(pcm, begin - margin, end - begin + 2 * margin)
        offset = max(begin - margin, 0)  # global frame of spec[0]
        maxima = _local_maxima(spec, sets, begin - offset, end - offset)
        for (t, b), (times_out, bins_out, levels_out) in zip(maxima, found, strict=True):
            if not len(t):
                continue
            dt, df = _refine(spec, t, b)
            times_out.append(t + offset + dt)
            bins_out.append(b + MIN_BIN - 1 + df)
            levels_out.append(spec[t, b])
    result = []
    for times_out, bins_out, levels_out in found:
        if not times_out:
            result.append(Peaks(np.empty(0), np.empty(0), np.empty(0, np.float32)))
            continue
        times, bins = np.concatenate(times_out), np.concatenate(bins_out)
        order = np.lexsort((bins, times))
        result.append(
            Peaks(
                times[order].astype(np.float64),
                bins[order].astype(np.float64),
                np.concatenate(levels_out)[order].astype(np.float32),
            )
        )
    return result


def _refine(spec: np.ndarray, t: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (frames, bins) of the vertex of the parabola through each peak's neighbours."""
    centre = spec[t, b]
    left, right = spec[t, b - 1], spec[t, b + 1]
    bend = left - 2 * centre + right
    df = np.where(bend < 0, 0.5 * (left - right) / np.where(bend < 0, bend, -1), 0.0)
    before = spec[np.maximum(t - 1, 0), b]
    after = spec[np.minimum(t + 1, len(spec) - 1), b]
    bend = before - 2 * centre + after
    dt = np.where(bend < 0, 0.5 * (before - after) / np.where(bend < 0, bend, -1), 0.0)
    return np.clip(dt, -0.5, 0.5), np.clip(df, -0.5, 0.5)


def _covering(radius: int, small: int) -> np.ndarray:
    """Centres of windows of half-width ``small`` that together cover -radius .. radius."""
    if radius <= small:
        return np.zeros(1, np.int64)
    centres = np.arange(-radius + small, radius - small, 2 * small + 1)
    return np.append(centres, radius - small)


def _local_maxima(
    spec: np.ndarray, sets: tuple[PeakParams, ...], start: int, stop: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each setting, frames and bins (in ``spec``) of local maxima between frames ``start``
    and ``stop``, the strongest ``per_second`` of each second (seconds counted from ``start``)."""
    none = (np.empty(0, np.int64), np.empty(0, np.int64))
    if not len(spec):
        return [none for _ in sets]
    small_t = min(p.time_radius for p in sets)
    small_f = min(p.freq_radius for p in sets)
    local_max = maximum_filter(spec, size=(2 * small_t + 1, 2 * small_f + 1), mode="nearest")
    # A peak stands out from its frame's typical level, so silence and flat noise give none.
    # (The middle value by partition: np.median sorts more than it needs.)
    middle = spec.shape[1] // 2
    floor = np.partition(spec, middle, axis=1)[:, middle : middle + 1] + 10.0
    is_peak = (spec == local_max) & (spec > floor)
    is_peak[:start] = False
    is_peak[stop:] = False
    is_peak[:, 0] = is_peak[:, -1] = False  # the margin bins
    times, bins = np.nonzero(is_peak)
    strength = spec[times, bins]
    result = []
    for params in sets:
        # The larger neighbourhood's maximum: the smaller maxima at centres that cover it
        # (indices clipped at the edges, as the filter's "nearest" mode repeats the edge).
        keep = np.ones(len(times), bool)
        for dt in _covering(params.time_radius, small_t).tolist():
            for df in _covering(params.freq_radius, small_f).tolist():
                if dt or df:
                    t = np.clip(times + dt, 0, len(spec) - 1)
                    b = np.clip(bins + df, 0, spec.shape[1] - 1)
                    keep &= strength >= local_max[t, b]
        t, b, s = times[keep], bins[keep], strength[keep]
        if not len(t):
            result.append(none)
            continue
        second = (t - start) // round(1 / FRAME_SECONDS)
        order = np.lexsort((-s, second))
        t, b, second = t[order], b[order], second[order]
        rank = np.arange(len(t)) - np.searchsorted(second, second, side="left")
        kept = rank < params.per_second
        result.append((t[kept], b[kept]))
    return result


# --- quads ------------------------------------------------------------------------------------
class Quads(NamedTuple):
    hashes: np.ndarray  # (n, 5) float32: C'x, C'y, D'x, D'y in the box, log2(A freq / height)
    rising: np.ndarray  # bool: B above A (the box's orientation, kept by any positive scaling)
    a_times: np.ndarray  # float64 frames
    a_bins: np.ndarray  # float64 bins
    widths: np.ndarray  # float64 frames, B - A
    heights: np.ndarray  # float64 bins, |B - A|


def _empty_quads() -> Quads:
    return Quads(
        np.empty((0, 5), np.float32),
        np.empty(0, bool),
        *(np.empty(0) for _ in range(4)),
    )


def quads(peaks: Peaks, *, reference: bool) -> Quads:
    """Quads of a peak list, grouped by strength so that an upload forms its work's quads.

    A work keeps, for each A, the box whose B is the strongest peak in A's window with at least
    two peaks inside, and C and D the two strongest inside. Grouping by time order instead (the
    first box, the first two inside) lost most quads: an upload's denser peaks come between A
    and B and inside the box, and change the order, but they are weaker than the work's peaks
    (those are the strongest of their second and of a wide neighbourhood), so strength keeps
    the work's choice near the top. An upload keeps the ``QUERY_BOXES`` strongest B of each A
    in the window widened by the factors allowed, and C and D any two of the ``QUERY_INNER``
    strongest inside. C is the earlier of the two in either case."""
    t, f, level = peaks.times, peaks.bins, peaks.levels
    n = len(t)
    if n < 4:
        return _empty_quads()
    # an upload's window and least height widen by the largest factor allowed
    widen = 1.0 if reference else MAX_FACTOR
    low, high, min_height = MIN_WIDTH / widen, MAX_WIDTH * widen, MIN_HEIGHT / widen
    # every (A, B) pair in the window, as index arrays
    a_parts, b_parts = [], []
    for step in range(1, min(MAX_STEP, n - 1) + 1):
        a = np.arange(n - step)
        dt = t[step:] - t[:-step]
        ok = (dt >= low) & (dt <= high) & (np.abs(f[step:] - f[:-step]) >= min_height)
        a_parts.append(a[ok])
        b_parts.append(a[ok] + step)
    a_idx, b_idx = np.concatenate(a_parts), np.concatenate(b_parts)
    if not len(a_idx):
        return _empty_quads()
    # peaks inside each box (columns: offsets from A), away from its edges: a C level with A
    # (the same partial, a moment later) is common, so its hash would crowd a few keys, and
    # it falls in or out of the box on a fraction of a bin. An upload's margin is narrower by
    # the tolerance, so that the work's C and D stay inside the upload's box.
    margin = INNER_MARGIN if reference else INNER_MARGIN - float(TOLERANCE[:4].max())
    offsets = np.arange(1, MAX_STEP)
    k = np.minimum(a_idx[:, None] + offsets[None, :], n - 1)
    x = (t[k] - t[a_idx][:, None]) / (t[b_idx] - t[a_idx])[:, None]
    y = (f[k] - f[a_idx][:, None]) / (f[b_idx] - f[a_idx])[:, None]
    inside = (
        (a_idx[:, None] + offsets[None, :] < b_idx[:, None])
        & (x > margin)
        & (x < 1 - margin)
        & (y > margin)
        & (y < 1 - margin)
    )
    has = inside.sum(axis=1) >= 2
    a_idx, b_idx, inside, k = a_idx[has], b_idx[has], inside[has], k[has]
    if not len(a_idx):
        return _empty_quads()
    # the strongest boxes of each A: sorted by A, then by B's level, strongest first
    order = np.lexsort((-level[b_idx], a_idx))
    a_idx, b_idx, inside, k = a_idx[order], b_idx[order], inside[order], k[order]
    per_root = np.arange(len(a_idx)) - np.searchsorted(a_idx, a_idx, side="left")
    keep = per_root < (QUADS_PER_ROOT if reference else QUERY_BOXES)
    a_idx, b_idx, inside, k = a_idx[keep], b_idx[keep], inside[keep], k[keep]
    # each box's strongest inner peaks, strongest first (-1 where a box has fewer)
    inner = 2 if reference else QUERY_INNER
    strength = np.where(inside, level[k], -np.inf)
    top = np.argsort(-strength, axis=1, kind="stable")[:, :inner]
    rows = np.arange(len(a_idx))[:, None]
    first = np.where(inside[rows, top], k[rows, top], -1)
    combos = [(i, j) for i in range(inner) for j in range(i + 1, inner)]
    c_idx = np.concatenate([first[:, i] for i, _ in combos])
    d_idx = np.concatenate([first[:, j] for _, j in combos])
    a_idx = np.tile(a_idx, len(combos))
    b_idx = np.tile(b_idx, len(combos))
    valid = (c_idx >= 0) & (d_idx >= 0)
    a_idx, b_idx, c_idx, d_idx = a_idx[valid], b_idx[valid], c_idx[valid], d_idx[valid]
    # peaks are sorted by time (then bin), so the smaller index is the earlier peak
    c_idx, d_idx = np.minimum(c_idx, d_idx), np.maximum(c_idx, d_idx)
    return _quads_of(t, f, a_idx, b_idx, c_idx, d_idx)


def _quads_of(
    t: np.ndarray, f: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
) -> Quads:
    width = t[b] - t[a]
    signed = f[b] - f[a]
    hashes = np.stack(
        [
            (t[c] - t[a]) / width,
            (f[c] - f[a]) / signed,
            (t[d] - t[a]) / width,
            (f[d] - f[a]) / signed,
            np.log2(f[a] / np.abs(signed)),
        ],
        axis=1,
    ).astype(np.float32)
    return Quads(hashes, signed > 0, t[a], f[a], width, np.abs(signed))


def reference_quads(pcm: np.ndarray) -> tuple[Quads, Peaks]:
    """A work's index entries and the peaks its matches are verified against."""
    peaks = find_peaks(pcm, REFERENCE)
    return quads(peaks, reference=True), peaks


# --- keys -------------------------------------------------------------------------------------
def _cell_coords(hashes: np.ndarray) -> np.ndarray:
    """Float cell coordinates of each hash: four box coordinates and the log ratio."""
    box = np.clip(hashes[:, :4], 0.0, 0.999999) * CELLS
    ratio = (np.clip(hashes[:, 4], *LOG_RATIO_RANGE) - LOG_RATIO_RANGE[0]) / LOG_RATIO_CELL
    return np.column_stack([box, ratio])


_RATIO_CELLS = int(np.ceil((LOG_RATIO_RANGE[1] - LOG_RATIO_RANGE[0]) / LOG_RATIO_CELL)) + 1


def _encode(cells: np.ndarray, rising: np.ndarray) -> np.ndarray:
    key = rising.astype(np.int64)
    for dim, size in enumerate([*CELLS.tolist(), _RATIO_CELLS]):
        key = key * size + cells[:, dim]
    return key


def quad_keys(q: Quads) -> np.ndarray:
    """The one key (an integer under 2**26) a work's quad is stored under."""
    return _encode(np.floor(_cell_coords(q.hashes)).astype(np.int64), q.rising)


def tolerances(q: Quads) -> np.ndarray:
    """How far from each quad's hash a matching hash may be, per coordinate ((n, 5) float32):
    TOLERANCE, the last coordinate widened by A_SLACK bins of A's frequency (up to a cell)."""
    tol = np.repeat(TOLERANCE[None, :], len(q.a_bins), axis=0)
    low_a = A_SLACK / (np.maximum(q.a_bins, 1.0) * np.log(2))
    tol[:, 4] = np.minimum(TOLERANCE[4] + low_a, LOG_RATIO_CELL)
    return tol


def query_cells(q: Quads) -> tuple[np.ndarray, np.ndarray]:
    """(keys, quad index) of every cell within ``tolerances`` of each upload quad: the quad's own
    cell and, in each coordinate it is near a border in, the neighbouring one."""
    coords = _cell_coords(q.hashes)
    scale = np.concatenate([CELLS.astype(np.float32), [1 / LOG_RATIO_CELL]])
    reach = tolerances(q) * scale
    cells = np.floor(coords).astype(np.int64)
    frac = coords - cells
    step = np.where(frac < reach, -1, np.where(frac > 1 - reach, 1, 0))
    limits = np.array([*CELLS.tolist(), _RATIO_CELLS])
    # A pattern of neighbours applies to the quads near a border in each of its coordinates:
    # found by a bit mask, so that each pattern's work is only over its few quads.
    near = ((step != 0) << np.arange(5)).sum(axis=1)
    keys, owners = [], []
    for pattern in range(32):
        chosen = np.flatnonzero((near & pattern) == pattern)
        use = np.array([(pattern >> dim) & 1 for dim in range(5)], bool)
        moved = cells[chosen] + step[chosen] * use
        ok = np.all((moved >= 0) & (moved < limits), axis=1)
        keys.append(_encode(moved[ok], q.rising[chosen[ok]]))
        owners.append(chosen[ok])
    return np.concatenate(keys), np.concatenate(owners)


# --- index ------------------------------------------------------------------------------------
class Postings(NamedTuple):
    """What a hit needs, per posting: the work, its quad's exact hash and box."""

    works: np.ndarray  # int32 work numbers
    hashes: np.ndarray  # (n, 5) float16
    a_times: np.ndarray
    a_bins: np.ndarray
    widths: np.ndarray
    heights: np.ndarray


# Given (keys, owners) of the cells asked for, the postings found and which ask each answers.
QuadLookup = Callable[[np.ndarray], tuple[np.ndarray, Postings]]


class QuadIndex:
    """Postings sorted by key: the lookup a key-value store answers, in memory or memory-mapped
    (``from_columns``: a host's worker processes then share one copy through the page cache).
    Columns are held compact: hash coordinates in float16 (a step of at most 0.002, against
    tolerances of 0.009 and more), the rest in 32 bits."""

    def __init__(self, works: Iterable[tuple[int, Quads]]) -> None:
        parts = list(works)
        keys = np.concatenate([quad_keys(q) for _, q in parts] or [np.empty(0, np.int64)])
        order = np.argsort(keys, kind="stable")

        def column(values: Callable[[int, Quads], np.ndarray], width: int = 0) -> np.ndarray:
            joined = [values(w, q) for w, q in parts]
            if not joined:
                return np.empty((0, width) if width else 0)
            return np.concatenate(joined)[order]

        self.keys = keys[order].astype(np.int32)
        self.postings = _compact(
            Postings(
                column(lambda w, q: np.full(len(q.a_times), w)),
                column(lambda _, q: q.hashes, 5),
                column(lambda _, q: q.a_times),
                column(lambda _, q: q.a_bins),
                column(lambda _, q: q.widths),
                column(lambda _, q: q.heights),
            )
        )

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> QuadIndex:
        """An index over columns saved by ``columns`` (arrays or memory maps, used as they are)."""
        index = cls.__new__(cls)
        index.keys = columns["keys"]
        index.postings = Postings(*(columns[name] for name in Postings._fields))
        return index

    def columns(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, **self.postings._asdict()}

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, Postings]:
        """For asked keys (repeats allowed), which ask each posting answers, and the postings."""
        keys = np.asarray(keys).astype(self.keys.dtype)  # else numpy converts the whole index
        left = np.searchsorted(self.keys, keys, "left")
        right = np.searchsorted(self.keys, keys, "right")
        counts = right - left
        asks = np.repeat(np.arange(len(keys)), counts)
        starts = np.repeat(left - np.cumsum(counts) + counts, counts)
        rows = starts + np.arange(counts.sum())
        return asks, Postings(*(np.asarray(column[rows]) for column in self.postings))


def _compact(p: Postings) -> Postings:
    return Postings(
        p.works.astype(np.int32),
        np.asarray(p.hashes, np.float16).reshape(-1, 5),
        *(np.asarray(column, np.float32) for column in p[2:]),
    )


def merged_index(indexes: Iterable[QuadIndex]) -> QuadIndex:
    """One index holding the postings of several (a snapshot's and the works indexed since)."""
    parts = list(indexes)
    keys = np.concatenate([np.asarray(i.keys) for i in parts] or [np.empty(0, np.int32)])
    order = np.argsort(keys, kind="stable")
    columns = {"keys": keys[order]}
    for name in Postings._fields:
        joined = [np.asarray(getattr(i.postings, name)) for i in parts]
        columns[name] = np.concatenate(joined)[order] if joined else np.empty(0)
    return QuadIndex.from_columns(columns)


def merged_lookup(indexes: Sequence[QuadIndex]) -> QuadLookup:
    """A lookup answering from each index in turn (a memory-mapped snapshot and a small index
    of the works added since, which is cheaper than merging them on every addition)."""

    def lookup(keys: np.ndarray) -> tuple[np.ndarray, Postings]:
        found = [index.lookup(keys) for index in indexes]
        if len(found) == 1:
            return found[0]
        asks = np.concatenate([a for a, _ in found])
        postings = Postings(
            *(np.concatenate(column) for column in zip(*(p for _, p in found), strict=True))
        )
        return asks, postings

    return lookup


# --- a work's stored form ---------------------------------------------------------------------
def pack_work(q: Quads, peaks: Peaks) -> bytes:
    """A work's quads and verification peaks as one compressed object (what the index is built
    from, and what a candidate is verified against)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        hashes=q.hashes.astype(np.float16),
        rising=q.rising,
        a_times=q.a_times.astype(np.float32),
        a_bins=q.a_bins.astype(np.float32),
        widths=q.widths.astype(np.float32),
        heights=q.heights.astype(np.float32),
        peak_times=peaks.times.astype(np.float32),
        peak_bins=peaks.bins.astype(np.float32),
        peak_levels=peaks.levels.astype(np.float16),
    )
    return buffer.getvalue()


def unpack_work(data: bytes) -> tuple[Quads, Peaks]:
    with np.load(io.BytesIO(data)) as a:
        quads = Quads(
            a["hashes"].astype(np.float32),
            a["rising"],
            *(a[name].astype(np.float64) for name in ("a_times", "a_bins", "widths", "heights")),
        )
        peaks = Peaks(
            a["peak_times"].astype(np.float64),
            a["peak_bins"].astype(np.float64),
            a["peak_levels"].astype(np.float32),
        )
    return quads, peaks


# --- matching ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvariantPolicy:
    # hits agreeing on both factors and one line, to be worth verifying: two are enough, as the
    # verification, not the hits, keeps false matches out (a 10 s excerpt may form only a few)
    min_hits: int = 2
    line_frames: float = 5.0  # a hit is on the line if this close in upload time
    factor_band: float = 0.02  # log band of factors around the candidate's (2 %)
    time_slack: int = 4  # verification: frames either side a work's peak may land
    bin_slack: float = 2.0  # ... and bins either side
    # Share of the work's peaks found in the upload. A copy shows nearly all, even band-limited;
    # other music of the same style, given two chance hits and the best of the refined factors,
    # found over half on the bench, so a verdict needs well above that.
    confident_share: float = 0.7
    confident_found: int = 40  # ... and how many at least
    weak_share: float = 0.6
    weak_found: int = 25
    candidates: int = 10  # works verified per upload, most hits first


@dataclass(frozen=True)
class InvariantMatch:
    work: int
    score: int  # the work's peaks found in the upload where the factors put them
    share: float  # score over the work's peaks that fall in the matched part of the upload
    hits: int  # quads agreeing on the factors and the line
    tempo_factor: float  # > 1: the upload plays the work faster
    pitch_factor: float  # > 1: the upload sounds higher
    upload_offset_s: float
    work_offset_s: float
    matched_s: float
    confidence: float

    def is_confident(self, policy: InvariantPolicy) -> bool:
        return self.score >= policy.confident_found and self.share >= policy.confident_share

    def is_weak(self, policy: InvariantPolicy) -> bool:
        return self.score >= policy.weak_found and self.share >= policy.weak_share


class Hits(NamedTuple):
    works: np.ndarray
    upload_times: np.ndarray  # A in the upload, frames
    work_times: np.ndarray  # A in the work, frames
    upload_bins: np.ndarray
    work_bins: np.ndarray
    log_time: np.ndarray  # ln(upload width / work width)
    log_freq: np.ndarray  # ln(upload height / work height)


def find_hits(q: Quads, lookup: QuadLookup) -> tuple[Hits, int]:
    """Upload quads and work quads within ``tolerances`` of each other whose boxes differ by factors
    in range; and the number of distinct keys asked (a key-value store's reads)."""
    keys, owners = query_cells(q)
    # Asked in key order: the index's binary searches then walk memory in order (much faster
    # than in quad order), and the distinct keys are counted without np.unique.
    order = np.argsort(keys)
    keys, owners = keys[order], owners[order]
    distinct = int(np.count_nonzero(np.diff(keys))) + 1 if len(keys) else 0
    tol = tolerances(q)
    parts: list[Hits] = []
    limit = np.log(MAX_FACTOR)
    for begin in range(0, len(keys), ASK_BATCH):
        asks, found = lookup(keys[begin : begin + ASK_BATCH])
        quad = owners[begin : begin + ASK_BATCH][asks]
        # one coordinate at a time, each over the postings still close: most fail the first
        rows = np.arange(len(quad))
        for dim in range(5):
            close = np.abs(q.hashes[quad, dim] - found.hashes[rows, dim]) <= tol[quad, dim]
            quad, rows = quad[close], rows[close]
        log_time = np.log(q.widths[quad] / found.widths[rows])
        log_freq = np.log(q.heights[quad] / found.heights[rows])
        ok = (np.abs(log_time) <= limit) & (np.abs(log_freq) <= limit)
        quad, rows = quad[ok], rows[ok]
        parts.append(
            Hits(
                found.works[rows].astype(np.int64),
                q.a_times[quad],
                found.a_times[rows],
                q.a_bins[quad],
                found.a_bins[rows],
                log_time[ok],
                log_freq[ok],
            )
        )
    if not parts:
        empty = np.empty(0)
        return Hits(np.empty(0, np.int64), *(empty for _ in range(6))), 0
    hits = Hits(*(np.concatenate(column) for column in zip(*parts, strict=True)))
    return hits, distinct


class Candidate(NamedTuple):
    work: int
    hits: int
    time_factor: float  # upload time per work time
    freq_factor: float  # upload frequency per work frequency
    offset: float  # upload frame of work frame 0
    upload_span: tuple[float, float]  # frames of the upload the agreeing hits cover


def candidates(hits: Hits, policy: InvariantPolicy) -> list[Candidate]:
    """Works whose hits agree on a time factor, a frequency factor and one line from work time
    to upload time, most agreeing hits first."""
    if not len(hits.works):
        return []
    # Votes in a grid of 1 % factor cells, each hit voting for its cell and the eight around it,
    # so a cluster split by a cell border still counts whole.
    cell = np.round(np.column_stack([hits.log_time, hits.log_freq]) / 0.01).astype(np.int64)
    votes: list[np.ndarray] = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            votes.append(
                hits.works * (1 << 20) + (cell[:, 0] + dx + 512) * 1024 + cell[:, 1] + dy + 512
            )
    keys, counts = np.unique(np.concatenate(votes), return_counts=True)
    work_of = keys >> 20
    order = np.lexsort((-counts, work_of))
    best_first = order[np.r_[True, work_of[order][1:] != work_of[order][:-1]]]
    best_first = best_first[counts[best_first] >= policy.min_hits]
    best_first = best_first[np.argsort(-counts[best_first], kind="stable")][: 3 * policy.candidates]
    found: list[Candidate] = []
    for key in keys[best_first].tolist():
        work = key >> 20
        lt = ((key >> 10) & 1023) - 512
        lf = (key & 1023) - 512
        near = (
            (hits.works == work)
            & (np.abs(hits.log_time - lt * 0.01) <= 0.015 + policy.factor_band)
            & (np.abs(hits.log_freq - lf * 0.01) <= 0.015 + policy.factor_band)
        )
        fitted = _fit_line(hits, np.flatnonzero(near), policy)
        if fitted is not None:
            found.append(Candidate(work, *fitted))
    found.sort(key=lambda c: -c.hits)
    best: dict[int, Candidate] = {}
    for c in found:
        best.setdefault(c.work, c)
    return list(best.values())[: policy.candidates]


def _fit_line(
    hits: Hits, near: np.ndarray, policy: InvariantPolicy
) -> tuple[int, float, float, float, tuple[float, float]] | None:
    """RANSAC: the line upload_time = factor * work_time + offset that most hits lie on, refit
    on its inliers; None when too few agree."""
    if len(near) < policy.min_hits:
        return None
    u, w = hits.upload_times[near], hits.work_times[near]
    rng = np.random.default_rng(len(near))  # deterministic: the same upload, the same answer
    tries = min(64, len(near) * (len(near) - 1) // 2)
    i = rng.integers(0, len(near), tries)
    j = rng.integers(0, len(near), tries)
    span = w[j] - w[i]
    # a pair close in work time says little about the slope: fall back on the boxes' factor
    box_factor = float(np.exp(np.median(hits.log_time[near])))
    slope = np.where(np.abs(span) > 20, (u[j] - u[i]) / np.where(span == 0, 1, span), box_factor)
    slope = np.where(
        np.abs(np.log(np.abs(slope) + 1e-9) - np.log(box_factor)) < 0.03, slope, box_factor
    )
    offset = u[i] - slope * w[i]
    residual = np.abs(u[None, :] - (slope[:, None] * w[None, :] + offset[:, None]))
    inliers = residual <= policy.line_frames
    # distinct upload times: one onset repeated through many quads is one piece of evidence
    best = int(np.argmax(inliers.sum(axis=1)))
    chosen = near[inliers[best]]
    if len(np.unique(np.round(hits.upload_times[chosen]))) < policy.min_hits:
        return None
    u, w = hits.upload_times[chosen], hits.work_times[chosen]
    if np.ptp(w) > 40:
        slope_fit, offset_fit = np.polyfit(w, u, 1)
        if abs(np.log(slope_fit / slope[best])) > 0.05:
            slope_fit, offset_fit = float(slope[best]), float(offset[best])
    else:
        slope_fit = float(np.exp(np.median(hits.log_time[chosen])))
        offset_fit = float(np.median(u - slope_fit * w))
    freq_factor = float(
        np.exp(np.median(np.log(hits.upload_bins[chosen] / hits.work_bins[chosen])))
    )
    return (
        len(chosen),
        float(slope_fit),
        freq_factor,
        float(offset_fit),
        (float(u.min()), float(u.max())),
    )


def verify(
    candidate: Candidate,
    work_peaks: Peaks,
    upload: Upload,
    policy: InvariantPolicy,
) -> tuple[int, int, tuple[float, float]]:
    """Map the work's peaks into the upload with the candidate's factors and count how many land
    within the slack of one of the upload's peaks (``upload.peaks``, sorted by time). Returns
    (found, expected, upload span in frames of the found ones): only the work's peaks that land
    inside the upload and its band are expected."""
    t = work_peaks.times * candidate.time_factor + candidate.offset
    f = work_peaks.bins * candidate.freq_factor
    ti, fi = np.round(t).astype(np.int64), np.round(f).astype(np.int64)
    inside = (ti >= 0) & (ti < upload.frames) & (fi >= MIN_BIN) & (fi <= MAX_BIN)
    if not inside.any():
        return 0, 0, (0.0, 0.0)
    hit = _near_peak(ti[inside], fi[inside], upload.peaks, policy)
    times = t[inside]
    # Judge the stretch of the upload where the work was found (an upload may hold only part of
    # it): from the first found peak to the last, widened by the hits' span.
    if not hit.any():
        return 0, int(inside.sum()), (0.0, 0.0)
    lo = min(float(times[hit].min()), candidate.upload_span[0])
    hi = max(float(times[hit].max()), candidate.upload_span[1])
    region = (times >= lo) & (times <= hi)
    return int((hit & region).sum()), int(region.sum()), (lo, hi)


def _near_peak(
    frames: np.ndarray, bins: np.ndarray, peaks: Peaks, policy: InvariantPolicy
) -> np.ndarray:
    """Whether each (frame, bin) is within the slack of a peak, both rounded to whole frames and
    bins: the upload's peaks within the time slack by binary search, then their bins compared
    (memory follows the peaks, where a frames x bins grid of a three-hour upload took a GB)."""
    peak_frames = np.round(peaks.times).astype(np.int64)
    peak_bins = np.round(peaks.bins).astype(np.int64)
    left = np.searchsorted(peak_frames, frames - policy.time_slack, "left")
    right = np.searchsorted(peak_frames, frames + policy.time_slack, "right")
    found = np.zeros(len(frames), bool)
    bin_slack = int(policy.bin_slack)
    for step in range(int((right - left).max(initial=0))):
        row = left + step
        open_ = row < right
        row = np.minimum(row, len(peak_bins) - 1)
        found |= open_ & (np.abs(peak_bins[row] - bins) <= bin_slack)
    return found


def refine(
    candidate: Candidate, work_peaks: Peaks, upload: Upload, policy: InvariantPolicy
) -> Candidate:
    """A time factor from a few hits over a short stretch is rough: try factors around it (the
    line pivoting on the hits' middle) in 0.25 % steps over +-3 %, and keep those under which
    most of the work's peaks are found. (The frequency factor needs no help: every hit measures
    it directly, as the ratio of A's frequencies.)"""
    pivot_upload = 0.5 * (candidate.upload_span[0] + candidate.upload_span[1])
    pivot_work = (pivot_upload - candidate.offset) / candidate.time_factor

    def trial(dt: float) -> Candidate:
        time_factor = candidate.time_factor * float(np.exp(dt))
        return candidate._replace(
            time_factor=time_factor, offset=pivot_upload - time_factor * pivot_work
        )

    grid = np.arange(-0.03, 0.0301, 0.0025)
    found = np.array([verify(trial(dt), work_peaks, upload, policy)[0] for dt in grid.tolist()])
    # The slack of the verification makes a plateau of equally good factors: take its middle.
    return trial(float(grid[found == found.max()].mean()))


def _in_range(*factors: float) -> bool:
    return all(f > 0 and abs(math.log(f)) <= math.log(MAX_FACTOR) for f in factors)


class Upload(NamedTuple):
    """An upload's side of matching: its quads, and all its local maxima for verification."""

    quads: Quads
    peaks: Peaks
    frames: int


def analyse_upload(pcm: np.ndarray) -> Upload:
    """The quads and peaks of an upload (mono PCM at SAMPLE_RATE)."""
    pcm = np.asarray(pcm, np.float32).reshape(-1)
    query, verify = find_peak_sets(pcm, (QUERY, VERIFY))
    return Upload(quads(query, reference=False), verify, _frames(pcm))


def analyse_track(pcm: np.ndarray) -> tuple[Upload, Quads, Peaks]:
    """An upload's side of matching, and the index entries and verification peaks it joins the
    catalogue with once published, from one spectrogram."""
    pcm = np.asarray(pcm, np.float32).reshape(-1)
    query, verify, reference = find_peak_sets(pcm, (QUERY, VERIFY, REFERENCE))
    upload = Upload(quads(query, reference=False), verify, _frames(pcm))
    return upload, quads(reference, reference=True), reference


def _frames(pcm: np.ndarray) -> int:
    return (len(pcm) - N_FFT) // HOP + 1 if len(pcm) >= N_FFT else 0


def match_quads(
    upload: Upload,
    lookup: QuadLookup,
    work_peaks: Callable[[int], Peaks | None],
    policy: InvariantPolicy = InvariantPolicy(),
    limit: int = 5,
) -> tuple[list[InvariantMatch], dict[str, int]]:
    """The works the upload matches whatever its tempo, pitch or speed, best first, with the
    factors found; and counts (keys asked, hits, candidates verified) for the record."""
    hits, asked = find_hits(upload.quads, lookup)
    found: list[InvariantMatch] = []
    chosen = candidates(hits, policy)
    for candidate in chosen:
        peaks = work_peaks(candidate.work)
        if peaks is None:
            continue
        candidate = refine(candidate, peaks, upload, policy)
        if not _in_range(candidate.time_factor, candidate.freq_factor):  # refined past it
            continue
        score, expected, (lo, hi) = verify(candidate, peaks, upload, policy)
        share = score / expected if expected else 0.0
        match = InvariantMatch(
            work=candidate.work,
            score=score,
            share=round(share, 3),
            hits=candidate.hits,
            tempo_factor=round(1 / candidate.time_factor, 4),
            pitch_factor=round(candidate.freq_factor, 4),
            upload_offset_s=round(lo * FRAME_SECONDS, 2),
            work_offset_s=round((lo - candidate.offset) / candidate.time_factor * FRAME_SECONDS, 2),
            matched_s=round((hi - lo) * FRAME_SECONDS, 1),
            confidence=round(
                min(1.0, score / policy.confident_found, share / policy.confident_share), 3
            ),
        )
        if match.is_weak(policy) or match.is_confident(policy):
            found.append(match)
    found.sort(key=lambda m: (-m.is_confident(policy), -m.score))
    counts = {"keys": asked, "hits": len(hits.works), "verified": len(chosen)}
    return found[:limit], counts
