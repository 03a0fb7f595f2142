"""Quad fingerprints find a work whatever its tempo, pitch or speed, and say by how much it was
changed; hashes that agree by chance, with no one pair of factors behind them, accuse nobody."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from scipy.signal import resample_poly

from trackflow.media import invariant as inv
from trackflow.media.ffmpeg import ffmpeg_exe
from trackflow.media.samples import synthesise

RATE = inv.SAMPLE_RATE


def _mono(stereo: np.ndarray) -> np.ndarray:
    return resample_poly(stereo.mean(axis=1), 1, 4).astype(np.float32)


def _filtered(pcm: np.ndarray, chain: str) -> np.ndarray:
    """Mono 11,025 Hz PCM through an ffmpeg filter chain."""
    done = subprocess.run(
        [
            *(ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ac", "1"),
            *("-ar", str(RATE), "-i", "pipe:0", "-af", chain, "-ar", str(RATE)),
            *("-f", "f32le", "pipe:1"),
        ],
        input=pcm.astype("<f4").tobytes(),
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, "<f4")


@pytest.fixture(scope="module")
def catalogue() -> tuple[inv.QuadIndex, dict[int, inv.Peaks], dict[int, np.ndarray]]:
    works = {n: _mono(synthesise(30.0, seed=2000 + n)) for n in (1, 2, 3)}
    made = {n: inv.reference_quads(pcm) for n, pcm in works.items()}
    index = inv.QuadIndex((n, q) for n, (q, _) in made.items())
    return index, {n: p for n, (_, p) in made.items()}, works


def _random_peaks(seed: int, seconds: float = 20.0) -> inv.Peaks:
    rng = np.random.default_rng(seed)
    count = int(seconds * 6)
    times = np.sort(rng.uniform(0, seconds / inv.FRAME_SECONDS, count))
    return inv.Peaks(times, rng.uniform(60, 300, count), rng.uniform(0, 40, count))


@pytest.mark.parametrize(("time_factor", "freq_factor"), [(1.08, 1.0), (1.0, 0.92), (0.93, 1.07)])
def test_hashes_do_not_move_when_time_and_frequency_are_scaled(time_factor, freq_factor):
    """A work's quads are among the quads of its scaled copy, with the same hash and boxes
    scaled by the factors."""
    peaks = _random_peaks(5)
    work = inv.quads(peaks, reference=True)
    scaled = inv.Peaks(peaks.times * time_factor + 37.0, peaks.bins * freq_factor, peaks.levels)
    upload = inv.quads(scaled, reference=False)
    assert len(work.hashes) > 50
    distance = np.abs(work.hashes[:, None, :] - upload.hashes[None, :, :]).max(axis=2)
    nearest = distance.argmin(axis=1)
    found = distance[np.arange(len(nearest)), nearest] < 1e-4
    assert found.mean() > 0.95
    widths = upload.widths[nearest[found]] / work.widths[found]
    heights = upload.heights[nearest[found]] / work.heights[found]
    assert np.allclose(widths, time_factor) and np.allclose(heights, freq_factor)


def test_a_key_value_store_finds_a_quad_from_a_near_hash():
    """The cells an upload asks for hold the work's quad even when the hash moved a little
    across a cell border."""
    work = inv.quads(_random_peaks(8), reference=True)
    nudged = work._replace(hashes=work.hashes + inv.TOLERANCE * 0.9)
    keys, owners = inv.query_cells(nudged)
    stored = inv.quad_keys(work)
    asked = {(int(k), int(o)) for k, o in zip(keys, owners, strict=True)}
    assert all((int(k), i) in asked for i, k in enumerate(stored))


SEMITONE = 2 ** (1 / 12)


@pytest.mark.parametrize(
    ("chain", "tempo", "pitch"),
    [
        ("atempo=1.06", 1.06, 1.0),
        (f"rubberband=pitch={SEMITONE:.6f}", 1.0, SEMITONE),
        (f"asetrate={RATE * 0.95:.0f},aresample={RATE}", 0.95, 0.95),
    ],
    ids=["tempo+6%", "pitch+1st", "speed-5%"],
)
def test_a_changed_excerpt_matches_with_its_factors(catalogue, chain, tempo, pitch):
    index, peaks, works = catalogue
    excerpt = _filtered(works[2][RATE * 8 : RATE * 24], chain)[: RATE * 12]
    matches, _ = inv.match_quads(inv.analyse_upload(excerpt), index.lookup, peaks.get)
    assert matches and matches[0].work == 2
    best = matches[0]
    assert best.is_confident(inv.InvariantPolicy())
    assert best.tempo_factor == pytest.approx(tempo, rel=0.01)
    assert best.pitch_factor == pytest.approx(pitch, rel=0.01)
    assert best.work_offset_s == pytest.approx(8.0 + best.upload_offset_s * tempo, abs=0.3)


def test_unrelated_music_is_not_accused(catalogue):
    index, peaks, _ = catalogue
    for seed in (6001, 6002):
        query = _mono(synthesise(20.0, seed=seed))
        matches, _ = inv.match_quads(inv.analyse_upload(query), index.lookup, peaks.get)
        assert matches == []


def test_hits_that_agree_on_no_factors_make_no_candidate():
    """Many hits on one work, but each with factors of its own: chance, not a copy."""
    rng = np.random.default_rng(3)
    n = 60
    hits = inv.Hits(
        np.full(n, 1, np.int64),
        rng.uniform(0, 2000, n),
        rng.uniform(0, 2000, n),
        rng.uniform(50, 400, n),
        rng.uniform(50, 400, n),
        rng.uniform(-0.2, 0.2, n),
        rng.uniform(-0.2, 0.2, n),
    )
    assert inv.candidates(hits, inv.InvariantPolicy()) == []


def test_verification_rejects_factors_the_peaks_do_not_bear_out(catalogue):
    """A candidate on the right work with the wrong factors finds few of the work's peaks."""
    _, peaks, works = catalogue
    upload = inv.analyse_upload(works[1][RATE * 5 : RATE * 20])
    policy = inv.InvariantPolicy()
    frames_at_5s = 5 / inv.FRAME_SECONDS
    right = inv.Candidate(1, 10, 1.0, 1.0, -frames_at_5s, (0.0, 1000.0))
    wrong = right._replace(time_factor=1.06, freq_factor=0.95, offset=-frames_at_5s * 1.06)
    found, expected, _ = inv.verify(right, peaks[1], upload, policy)
    assert found / expected > 0.8
    found, expected, _ = inv.verify(wrong, peaks[1], upload, policy)
    assert found / max(expected, 1) < policy.weak_share


def test_an_upload_forms_the_works_quads_among_its_denser_weaker_peaks():
    """An upload has more peaks than the work indexed (a smaller neighbourhood, more a second),
    mostly weaker ones; quads grouped by strength are still formed from the work's four peaks,
    where grouping by time order lost most of them."""
    rng = np.random.default_rng(11)
    work = _random_peaks(12)
    extra = 2 * len(work.times)
    times = np.concatenate([work.times, rng.uniform(0, work.times.max(), extra)])
    bins = np.concatenate([work.bins, rng.uniform(60, 300, extra)])
    levels = np.concatenate([work.levels, rng.uniform(-20, 5, extra)])  # weaker, mostly
    order = np.argsort(times, kind="stable")
    dense = inv.Peaks(times[order] * 1.05 + 11.0, bins[order] * 0.95, levels[order])
    reference = inv.quads(work, reference=True)
    upload = inv.quads(dense, reference=False)
    assert len(reference.hashes) > 30
    distance = np.abs(reference.hashes[:, None, :] - upload.hashes[None, :, :]).max(axis=2)
    assert (distance.min(axis=1) < 1e-4).mean() > 0.8


def test_a_works_inner_peaks_keep_away_from_the_box_edges():
    """C and D level with A or B (one partial held) would crowd a few keys and fall in or out
    of the box on a fraction of a bin, so a work keeps them off its edges."""
    work = inv.quads(_random_peaks(13), reference=True)
    box = work.hashes[:, :4]
    assert len(box) and (box > inv.INNER_MARGIN).all() and (box < 1 - inv.INNER_MARGIN).all()
    # C is the earlier of the two
    assert (work.hashes[:, 0] <= work.hashes[:, 2]).all()


def test_the_tolerance_of_a_low_a_is_wider_but_never_over_a_cell():
    """Half a bin is a large share of a bass note's frequency: its log coordinate is let move
    more; a cell still holds the whole tolerance (a query asks one neighbour per side)."""
    work = inv.quads(_random_peaks(14), reference=True)
    low = work._replace(a_bins=np.full(len(work.a_bins), 9.0))
    high = work._replace(a_bins=np.full(len(work.a_bins), 400.0))
    tol_low, tol_high = inv.tolerances(low)[:, 4], inv.tolerances(high)[:, 4]
    assert (tol_low > 2 * tol_high).all() and (tol_low <= inv.LOG_RATIO_CELL).all()
    assert np.allclose(inv.tolerances(high)[:, :4], inv.TOLERANCE[:4])
    nudged = low._replace(hashes=low.hashes + inv.tolerances(low) * 0.9)
    keys, owners = inv.query_cells(nudged)
    asked = {(int(k), int(o)) for k, o in zip(keys, owners, strict=True)}
    assert all((int(k), i) in asked for i, k in enumerate(inv.quad_keys(low)))


def test_peaks_of_several_settings_from_one_filter_are_each_settings_own():
    """The larger neighbourhood's maxima gathered from the smaller filter are exactly the
    local maxima a filter of the larger size finds."""
    from scipy.ndimage import maximum_filter

    rng = np.random.default_rng(4)
    spec = rng.normal(0, 6, (400, 120)).astype(np.float32)
    small, large = inv.PeakParams(3, 3, 10_000), inv.PeakParams(7, 5, 10_000)
    found = inv._local_maxima(spec, (small, large), 0, len(spec))
    for params, (t, b) in zip((small, large), found, strict=True):
        size = (2 * params.time_radius + 1, 2 * params.freq_radius + 1)
        floor = np.sort(spec, axis=1)[:, spec.shape[1] // 2 : spec.shape[1] // 2 + 1] + 10.0
        expected = (spec == maximum_filter(spec, size=size, mode="nearest")) & (spec > floor)
        expected[:, 0] = expected[:, -1] = False
        assert {(int(x), int(y)) for x, y in zip(*np.nonzero(expected), strict=True)} == {
            (int(x), int(y)) for x, y in zip(t, b, strict=True)
        }


def test_verification_counts_a_peak_within_the_slack_and_no_further():
    """A work's peak is found when an upload peak is within the slack in whole frames and bins,
    as a dilated frames x bins grid would say, without the grid's memory."""
    policy = inv.InvariantPolicy()
    upload = inv.Peaks(np.array([100.0, 100.2, 300.0]), np.array([80.0, 200.0, 150.0]), np.zeros(3))
    frames = np.array([104, 105, 96, 100, 300, 300, 300])
    bins = np.array([82, 80, 78, 203, 147, 148, 153])
    found = inv._near_peak(frames, bins, upload, policy)
    assert found.tolist() == [True, False, True, False, False, True, False]


def test_an_index_from_saved_columns_and_merged_indexes_answer_as_one(catalogue, tmp_path):
    """A snapshot saved and memory-mapped, merged with the works added since, answers every
    lookup as one index built from all the works; a work's stored form keeps its quads."""
    _, _, works = catalogue
    made = {n: inv.reference_quads(pcm) for n, pcm in works.items()}
    stored = {n: inv.unpack_work(inv.pack_work(q, p)) for n, (q, p) in made.items()}
    assert np.allclose(stored[1][0].hashes, made[1][0].hashes, atol=2e-3)
    assert np.allclose(stored[1][1].times, made[1][1].times, atol=1e-3)
    first = inv.QuadIndex([(1, stored[1][0]), (2, stored[2][0])])
    for name, column in first.columns().items():
        np.save(tmp_path / f"{name}.npy", column)
    mapped = inv.QuadIndex.from_columns(
        {name: np.load(tmp_path / f"{name}.npy", mmap_mode="r") for name in first.columns()}
    )
    later = inv.QuadIndex([(3, stored[3][0])])
    keys = inv.query_cells(inv.analyse_upload(works[3][: RATE * 10]).quads)[0]
    whole = inv.QuadIndex((n, q) for n, (q, _) in stored.items()).lookup(keys)
    for answer in (
        inv.merged_lookup([mapped, later])(keys),
        inv.merged_index([mapped, later]).lookup(keys),
    ):
        assert len(answer[0]) == len(whole[0]) > 0
        assert sorted(answer[1].works.tolist()) == sorted(whole[1].works.tolist())
