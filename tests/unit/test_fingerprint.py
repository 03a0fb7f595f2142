"""Landmark fingerprints find a recording inside an upload, re-encoded, quieter or louder, noisy
or cut short, at the right offset; and they do not accuse music that is not in the catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from trackflow.media import fingerprint as fp
from trackflow.media.samples import synthesise


def _mono_11k(stereo: np.ndarray) -> np.ndarray:
    return resample_poly(stereo.mean(axis=1), 1, 4).astype(np.float32)


@pytest.fixture(scope="module")
def catalogue() -> tuple[fp.LandmarkIndex, dict[int, np.ndarray]]:
    works = {n: _mono_11k(synthesise(40.0, seed=1000 + n)) for n in range(1, 9)}
    return fp.LandmarkIndex((n, *fp.fingerprint([pcm])) for n, pcm in works.items()), works


def test_streaming_gives_the_same_landmarks_as_one_block():
    pcm = _mono_11k(synthesise(30.0, seed=3))
    whole = fp.fingerprint([pcm])
    blocks = fp.fingerprint(np.array_split(pcm, 37))
    assert np.array_equal(whole[0], blocks[0]) and np.array_equal(whole[1], blocks[1])
    assert 20 < len(whole[0]) / 30.0 < 200  # landmarks a second: dense enough, not a flood


def test_silence_has_no_landmarks():
    hashes, _ = fp.fingerprint([np.zeros(11025 * 5, dtype=np.float32)])
    assert len(hashes) == 0


@pytest.mark.parametrize(("work", "start_s", "length_s"), [(2, 13.0, 10.0), (5, 27.5, 5.0)])
def test_an_excerpt_is_found_at_its_offset(catalogue, work: int, start_s: float, length_s: float):
    index, works = catalogue
    excerpt = works[work][int(start_s * 11025) : int((start_s + length_s) * 11025)]
    matches = fp.match_landmarks(*fp.fingerprint([excerpt]), index.lookup)
    assert matches and matches[0].work == work
    best = matches[0]
    assert best.work_offset_s - best.upload_offset_s == pytest.approx(start_s, abs=0.1)
    assert best.is_confident(fp.MatchPolicy())


def test_noise_and_gain_do_not_hide_a_work(catalogue):
    index, works = catalogue
    rng = np.random.default_rng(4)
    excerpt = works[7][11025 * 20 : 11025 * 30].copy()
    level = np.sqrt(np.mean(excerpt**2))
    noisy = (excerpt + rng.standard_normal(len(excerpt)) * level / np.sqrt(10)) * 10 ** (-6 / 20)
    matches = fp.match_landmarks(*fp.fingerprint([noisy.astype(np.float32)]), index.lookup)
    assert matches and matches[0].work == 7


def test_a_work_inside_a_longer_upload_is_located(catalogue):
    index, works = catalogue
    other = _mono_11k(synthesise(20.0, seed=77))
    upload = np.concatenate([other, works[3][11025 * 5 : 11025 * 25], other[: 11025 * 5]])
    best = fp.match_landmarks(*fp.fingerprint([upload]), index.lookup)[0]
    assert best.work == 3
    assert best.upload_offset_s == pytest.approx(20.0, abs=1.5)
    assert best.matched_s > 12


def test_unrelated_music_is_not_accused(catalogue):
    index, _ = catalogue
    for seed in range(5):
        query = _mono_11k(synthesise(20.0, seed=5000 + seed))
        matches = fp.match_landmarks(*fp.fingerprint([query]), index.lookup)
        assert not any(m.is_confident(fp.MatchPolicy()) for m in matches), matches


def test_sampling_keeps_the_same_hashes_of_every_recording():
    hashes, times = fp.fingerprint([_mono_11k(synthesise(30.0, seed=11))])
    kept, kept_times = fp.sample_landmarks(hashes, times, 4)
    assert 0.18 < len(kept) / len(hashes) < 0.32  # about one in four
    assert np.isin(kept, hashes).all() and len(kept_times) == len(kept)
    other = fp.fingerprint([_mono_11k(synthesise(30.0, seed=12))])[0]
    # membership depends on the hash value alone, whichever recording it comes from
    shared = np.intersect1d(hashes, other)
    assert np.array_equal(
        np.isin(shared, kept), np.isin(shared, fp.sample_landmarks(other, other, 4)[0])
    )
    assert fp.sample_landmarks(hashes, times, 1)[0] is hashes


def test_a_sampled_work_is_nominated_and_judged_on_all_its_landmarks(catalogue):
    _, works = catalogue
    landmarks = {n: fp.fingerprint([pcm]) for n, pcm in works.items()}
    sampled = fp.LandmarkIndex(
        (n, *fp.sample_landmarks(h, t, 16)) for n, (h, t) in landmarks.items()
    )
    nothing = fp.LandmarkIndex([])
    policy = fp.MatchPolicy()

    def match(upload: np.ndarray, all_landmarks=landmarks.get) -> list[fp.Match]:
        hashes, times = fp.fingerprint([upload])
        return fp.match_catalogue(
            hashes, times, nothing.lookup, sampled.lookup, 16, all_landmarks, policy
        )

    excerpt = (works[6][12 * 11_025 : 22 * 11_025] * 10 ** (-6 / 20)).astype(np.float32)
    best = match(excerpt)[0]
    assert best.work == 6 and best.is_confident(policy)
    # as strong as against the full index: the verdict rests on all of the work's landmarks
    full = fp.match_landmarks(*fp.fingerprint([excerpt]), catalogue[0].lookup)[0]
    assert best.score == full.score
    assert best.work_offset_s == pytest.approx(12.0, abs=0.5)
    # a work gone from the catalogue (None) is not matched, and unrelated music nominates none
    assert match(excerpt, lambda number: None) == []
    assert match(_mono_11k(synthesise(30.0, seed=4242))) == []
