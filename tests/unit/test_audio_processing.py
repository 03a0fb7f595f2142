"""Waveform, loudness and renditions, measured on real signals by an independent meter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio
from trackflow.errors import InputRejected
from trackflow.media import ffmpeg, loudness, transcode, waveform
from trackflow.media.probe import inspect_audio
from trackflow.media.samples import RATE

SPP = 512
TARGET, CEILING = -14.0, -1.0


def _analyse(path: Path):
    return waveform.analyse_audio(
        path,
        inspect_audio(path),
        samples_per_pixel=SPP,
        sample_rate=RATE,
        silence_dbfs=-60,
        timeout=120,
    )


def _meter(path: Path, demuxer: str) -> ffmpeg.LoudnessStats:
    """ffmpeg's ebur128 filter: the independent meter the renditions are judged by."""
    return transcode.measure(path, demuxer, timeout=120)[0]


def _normalise(path: Path, out: Path) -> loudness.Normalisation:
    analysis, _, _ = _analyse(path)
    return loudness.normalise(
        path,
        inspect_audio(path),
        analysis.loudness,
        out,
        target_lufs=TARGET,
        ceiling_dbtp=CEILING,
        lossy_headroom_db=1.5,
        lossy_loudness_bias_lu=0.2,
        sample_rate=RATE,
        timeout=300,
    )


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("song")
    return audio.encode(audio.music(folder / "song.wav", seconds=12.0, seed=5), "flac", folder)


def test_peaks_follow_audiowaveform_v2_and_cover_the_duration(song: Path, tmp_path: Path):
    analysis, mins, maxs = _analyse(song)
    doc = waveform.peaks_document(mins, maxs, sample_rate=RATE, samples_per_pixel=SPP, bits=8)
    assert set(doc) == {
        "version",
        "channels",
        "sample_rate",
        "samples_per_pixel",
        "bits",
        "length",
        "data",
    }
    assert (doc["version"], doc["channels"], doc["bits"]) == (2, 1, 8)
    assert doc["length"] == int(np.ceil(12.0 * RATE / SPP))
    assert len(doc["data"]) == 2 * doc["length"]
    assert all(-128 <= v <= 127 for v in doc["data"])
    assert all(lo <= hi for lo, hi in zip(doc["data"][0::2], doc["data"][1::2], strict=True))
    assert max(doc["data"]) > 80  # the music is loud: peaks near full scale
    json.dumps(doc)
    assert analysis.duration_s == pytest.approx(12.0, abs=0.01)
    assert analysis.peak_dbfs == pytest.approx(-1.0, abs=0.3)
    assert -30 < analysis.rms_dbfs < -5
    assert analysis.loudness.integrated_lufs < -5


def test_sixteen_bit_peaks(song: Path):
    _, mins, maxs = _analyse(song)
    doc = waveform.peaks_document(mins, maxs, sample_rate=RATE, samples_per_pixel=SPP, bits=16)
    assert doc["bits"] == 16 and max(doc["data"]) > 20000


def test_cue_points_find_the_silence_around_the_music(tmp_path: Path):
    pcm = np.concatenate([np.zeros((RATE * 2, 2)), audio.synthesise(3.0, 2), np.zeros((RATE, 2))])
    path = audio.write_wav(tmp_path / "padded.wav", pcm.astype(np.float32))
    analysis, _, _ = _analyse(path)
    assert analysis.cue_in_s == pytest.approx(2.0, abs=0.05)
    assert analysis.cue_out_s == pytest.approx(5.0, abs=0.05)


def test_png_is_the_shape_of_the_track(tmp_path: Path):
    """A track that is silent, then loud, draws a flat line on the left and a band on the right."""
    pcm = np.concatenate([np.zeros((RATE * 2, 2)), audio.synthesise(2.0, 3)]).astype(np.float32)
    path = audio.write_wav(tmp_path / "half.wav", pcm)
    _, mins, maxs = _analyse(path)
    png = tmp_path / "wave.png"
    waveform.render_png(mins, maxs, png, width=400, height=80)
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image)
    assert image.size == (400, 80) and image.mode == "RGBA"
    alpha = pixels[:, :, 3]
    assert (alpha[:, :150] > 0).any(axis=1).sum() <= 2  # silence: the centre line alone
    drawn = (alpha[:, 250:] > 0).sum(axis=0)
    assert drawn.min() >= 5 and drawn.mean() > 15  # every column of the music is drawn
    assert alpha[0, 0] == 0  # transparent background


def test_truncated_audio_is_corrupt(song: Path, tmp_path: Path):
    mp3 = audio.encode(song, "mp3", tmp_path)
    info = inspect_audio(mp3)
    data = mp3.read_bytes()
    mp3.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputRejected) as caught:
        waveform.analyse_audio(
            mp3, info, samples_per_pixel=SPP, sample_rate=RATE, silence_dbfs=-60, timeout=60
        )
    assert caught.value.code == "corrupt_audio"


@pytest.mark.parametrize("gain_db", [-20.0, 0.0, 8.0])
def test_normalised_renditions_meet_the_target(gain_db: float, tmp_path: Path):
    """Quiet, loud and clipped-hot music all land at -14 LUFS +-0.5 with true peak <= -1 dBTP
    (+0.3 dB allowed for MP3), as measured by ebur128 on each MP3 as a player decodes it."""
    pcm = np.clip(audio.synthesise(15.0, 9) * 10 ** (gain_db / 20), -1, 1).astype(np.float32)
    source = audio.write_wav(tmp_path / "in.wav", pcm)
    normalised = tmp_path / "norm.flac"
    result = _normalise(source, normalised)
    assert result.output.integrated_lufs == pytest.approx(TARGET + 0.2, abs=0.3)
    assert result.output.true_peak_dbtp <= CEILING
    for bitrate in (128, 192, 320):
        out = tmp_path / f"{bitrate}.mp3"
        transcode.encode_mp3(
            normalised,
            out,
            bitrate_kbps=bitrate,
            sample_rate=RATE,
            source_peak_dbtp=result.output.true_peak_dbtp,
            max_peak_dbtp=CEILING + 0.2,
            timeout=120,
        )
        measured = _meter(out, "mp3")
        assert measured.integrated_lufs == pytest.approx(TARGET, abs=0.5), bitrate
        assert measured.true_peak_dbtp <= CEILING + 0.3, bitrate


def test_ebu_tech_3341_style_signals(tmp_path: Path):
    """EBU Tech 3341 case 1: a 1 kHz stereo sine that reads -23 LUFS; normalised it reads
    -14 LUFS, and the renditions keep it there."""
    source = tmp_path / "sine.wav"
    amplitude = 10 ** (-23 / 20)  # -23 dBFS; K-weighting adds 0.691 dB at 1 kHz
    wave = f"{amplitude}*sin(2*PI*1000*t)"
    audio.ffmpeg("-f", "lavfi", "-i", f"aevalsrc={wave}|{wave}:s=48000:d=20", str(source))
    analysis, _, _ = _analyse(source)
    assert analysis.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.2)
    normalised = tmp_path / "norm.flac"
    result = _normalise(source, normalised)
    assert not result.limited  # a sine has 3 dB of crest: gain alone stays under the ceiling
    out = tmp_path / "128.mp3"
    transcode.encode_mp3(
        normalised,
        out,
        bitrate_kbps=128,
        sample_rate=RATE,
        source_peak_dbtp=result.output.true_peak_dbtp,
        max_peak_dbtp=CEILING + 0.2,
        timeout=120,
    )
    assert _meter(out, "mp3").integrated_lufs == pytest.approx(TARGET, abs=0.5)


def test_silence_passes_through_without_infinities(tmp_path: Path):
    source = audio.write_wav(tmp_path / "silence.wav", np.zeros((RATE * 3, 2), dtype=np.float32))
    analysis, _, _ = _analyse(source)
    assert analysis.peak_dbfs is None and analysis.cue_in_s is None
    result = _normalise(source, tmp_path / "norm.flac")
    assert result.silent and result.gain_db == 0.0
    record = json.dumps(result.as_record())
    assert "Infinity" not in record and "NaN" not in record


def test_renditions_are_cbr_gapless_tagged_and_as_long_as_the_source(song: Path, tmp_path: Path):
    from mutagen.mp3 import MP3, BitrateMode

    normalised = tmp_path / "norm.flac"
    result = _normalise(song, normalised)
    out = tmp_path / "192.mp3"
    record = transcode.encode_mp3(
        normalised,
        out,
        bitrate_kbps=192,
        sample_rate=RATE,
        source_peak_dbtp=result.output.true_peak_dbtp,
        max_peak_dbtp=CEILING + 0.2,
        timeout=120,
    )
    transcode.write_id3(
        out, {"title": "Blue Hour", "artist": "Beyoncé", "track_number": 3}, audio.cover()
    )
    mp3 = MP3(out)
    assert mp3.info.bitrate == pytest.approx(192_000, abs=100)
    assert mp3.info.bitrate_mode in (BitrateMode.CBR, BitrateMode.UNKNOWN)
    assert mp3.tags.version[:2] == (2, 4)
    assert str(mp3.tags["TIT2"]) == "Blue Hour" and str(mp3.tags["TPE1"]) == "Beyoncé"
    assert mp3.tags.getall("APIC")[0].type == 3
    data = out.read_bytes()
    assert b"Info" in data[mp3.tags.size : mp3.tags.size + 4096]  # the LAME/Info header
    decoded = sum(
        len(b)
        for b in ffmpeg.read_pcm(
            ffmpeg.decode_args(out, "mp3"), channels=2, block_frames=1 << 16, timeout=60
        )
    )
    assert abs(decoded - 12.0 * RATE) <= 1152  # within one MP3 frame: the gapless header works
    assert record["duration_s"] == pytest.approx(12.0, abs=1152 / RATE)


def test_renditions_keep_every_artist_in_one_id3_frame(song: Path, tmp_path: Path):
    """Several artists go into the renditions' TPE1 as several values, not one joined string."""
    from mutagen.mp3 import MP3

    out = audio.encode(song, "mp3", tmp_path)
    transcode.write_id3(
        out, {"title": "Duet", "artist": "piman, jzig", "artists": ["piman", "jzig"]}, None
    )
    assert MP3(out).tags["TPE1"].text == ["piman", "jzig"]
