"""The HLS ladder, its loudness tags and the playlists served to a viewer, on real ffmpeg output.

A variant's length is checked twice: its edit list (what Chromium's MSE plays: 0 to 20.0 s for a
20 s master with it, 0 to 20.023 s without), and what ffmpeg decodes from its init segment and
segments joined. ffmpeg drops the priming the edit skips but ignores where it ends, so it
decodes the master's samples and then the padding of the last frame.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import m3u8
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from tests.support import audio
from trackflow.media import ffmpeg, loudness, mp4boxes, probe, streaming, transcode
from trackflow.media.samples import RATE, synthesise

SECONDS, SEGMENT = 13.0, 4.0
FRAME = {"aac": 1024, "opus": 960}  # samples per codec frame (Opus: 20 ms at 48 kHz)


def _master(folder: Path, seconds: float, channels: int = 2) -> tuple[Path, loudness.Normalisation]:
    pcm = synthesise(seconds, seed=11)
    source = audio.write_wav(folder / "song.wav", pcm if channels == 2 else pcm[:, :1])
    info = probe.inspect_audio(source)
    measured, _ = transcode.measure(source, info.demuxer, timeout=60)
    master = folder / "master.flac"
    result = loudness.normalise(
        source,
        info,
        measured,
        master,
        target_lufs=-14.0,
        ceiling_dbtp=-1.0,
        lossy_headroom_db=1.5,
        lossy_loudness_bias_lu=0.2,
        sample_rate=RATE,
        timeout=60,
    )
    return master, result


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    folder = tmp_path_factory.mktemp("ladder")
    master, normalised = _master(folder, SECONDS)
    record = streaming.encode_ladder(
        master,
        folder / "hls",
        loudness=normalised.output,
        timeout=60,
        segment_seconds=SEGMENT,
    )
    return folder / "hls", record, normalised


def _joined(folder: Path, name: str) -> Path:
    """A variant's init segment and segments, in playlist order, as one file."""
    playlist = m3u8.load(str(folder / name / "index.m3u8"))
    joined = folder / f"{name}.mp4"
    joined.write_bytes(
        (folder / name / playlist.segment_map[0].uri).read_bytes()
        + b"".join((folder / name / s.uri).read_bytes() for s in playlist.segments)
    )
    return joined


def _stream(path: Path) -> tuple[str, int, str]:
    """(codec, sample rate, channel layout) as ffmpeg reports the file's audio stream."""
    done = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    m = re.search(r"Audio: (\w+).*?, (\d+) Hz, (\w+)", done.stderr)
    assert m, done.stderr
    return m[1], int(m[2]), m[3]


def _decoded_samples(path: Path) -> int:
    args = ffmpeg.decode_args(path, "mov", channels=1)
    return sum(len(b) for b in ffmpeg.read_pcm(args, channels=1, block_frames=1 << 16, timeout=60))


def test_playlists_are_vod_fmp4_with_codecs_and_bandwidths(ladder):
    folder, record, _ = ladder
    master = m3u8.load(str(folder / "master.m3u8"))
    assert master.is_variant and master.is_independent_segments
    by_uri = {p.uri: p.stream_info for p in master.playlists}
    assert list(by_uri) == ["aac160/index.m3u8", "aac96/index.m3u8", "opus96/index.m3u8"]
    assert [i.codecs for i in by_uri.values()] == ["mp4a.40.2", "mp4a.40.2", "opus"]
    for variant in record["variants"]:
        info = by_uri[variant["playlist"]]
        assert info.bandwidth >= info.average_bandwidth
        assert info.average_bandwidth == pytest.approx(variant["bitrate_kbps"] * 1000, rel=0.1)
        media = m3u8.load(str(folder / variant["playlist"]))
        assert media.playlist_type == "vod" and media.is_endlist and media.is_independent_segments
        assert media.version == 7 and media.segment_map[0].uri == "init.mp4"
        durations = [s.duration for s in media.segments]
        assert len(durations) == variant["segments"] == 4
        # RFC 8216 §4.3.3.1: each EXTINF, rounded to the nearest integer, <= TARGETDURATION
        assert all(int(d + 0.5) <= media.target_duration for d in durations)
        assert media.target_duration == SEGMENT
        assert sum(durations) == pytest.approx(SECONDS, abs=1e-5)  # what plays: no priming
        assert [s.uri for s in media.segments] == [f"seg_{n:05d}.m4s" for n in range(1, 5)]
    listed = {f["path"]: f["content_type"] for f in record["files"]}
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert set(listed) == on_disk
    assert listed["master.m3u8"] == listed["opus96/index.m3u8"] == "application/vnd.apple.mpegurl"
    assert listed["aac96/init.mp4"] == "audio/mp4"
    assert listed["aac96/seg_00004.m4s"] == "video/iso.segment"


@pytest.mark.parametrize("name", ["aac160", "aac96", "opus96"])
def test_each_variant_plays_the_master_length_in_its_codec(ladder, name: str):
    folder, record, _ = ladder
    variant = next(v for v in record["variants"] if v["name"] == name)
    joined = _joined(folder, name)
    codec, rate, layout = _stream(joined)
    assert (codec, rate, layout) == (variant["codec"], variant["sample_rate"], "stereo")
    assert rate == (48_000 if name == "opus96" else RATE) and variant["channels"] == 2
    segment_bytes = variant["bytes"] - (folder / name / "init.mp4").stat().st_size
    assert segment_bytes * 8 / SECONDS == pytest.approx(variant["bitrate_kbps"] * 1000, rel=0.1)
    # the edit list trims the priming and ends where the master ends
    init = mp4boxes.read_init((folder / name / "init.mp4").read_bytes())
    ((duration, media_time),) = init.edits
    assert media_time == variant["priming_samples"] == (312 if codec == "opus" else 1024)
    assert init.pre_skip == (312 if codec == "opus" else None)
    valid = SECONDS * rate
    assert duration * rate / init.movie_timescale == pytest.approx(valid, abs=1)
    # ffmpeg honours the edit's start (not its end): the master's samples, then the padding
    # of the last frame
    assert 0 <= _decoded_samples(joined) - valid < FRAME[codec]
    assert variant["duration_s"] == pytest.approx(SECONDS, abs=1e-6)


def test_loudness_tags_state_the_masters_loudness(ladder):
    folder, _, normalised = ladder
    out = normalised.output
    gain = f"{-18 - out.integrated_lufs:.2f} dB"
    aac = MP4(folder / "aac160" / "init.mp4").tags
    assert aac is not None
    assert aac["----:com.apple.iTunes:REPLAYGAIN_TRACK_GAIN"] == [gain.encode()]
    peak = float(bytes(aac["----:com.apple.iTunes:REPLAYGAIN_TRACK_PEAK"][0]))
    assert peak == pytest.approx(10 ** (out.true_peak_dbtp / 20), abs=1e-6)
    opus = MP4(folder / "opus96" / "init.mp4").tags
    assert opus is not None and not any("REPLAYGAIN" in key for key in opus)
    r128 = int(bytes(opus["----:com.apple.iTunes:R128_TRACK_GAIN"][0]))
    assert r128 == round((-23 - out.integrated_lufs) * 256)  # Q7.8 relative to -23 LUFS
    # what the tags state is what the lossy variant measures, give or take the encoding
    measured, _ = transcode.measure(_joined(folder, "aac96"), "mov", timeout=60)
    assert measured.integrated_lufs == pytest.approx(out.integrated_lufs, abs=0.5)


def test_mp3_renditions_carry_their_own_replaygain(ladder, tmp_path: Path):
    folder, _, normalised = ladder
    mp3 = tmp_path / "128.mp3"
    record = transcode.encode_mp3(
        folder.parent / "master.flac",
        mp3,
        bitrate_kbps=128,
        sample_rate=RATE,
        source_peak_dbtp=normalised.output.true_peak_dbtp,
        max_peak_dbtp=-0.8,
        timeout=60,
    )
    own = ffmpeg.LoudnessStats.from_record(record["loudness"])
    transcode.write_id3(mp3, {"title": "Blue Hour"}, None, loudness=own)
    id3 = ID3(mp3)
    assert id3["TXXX:REPLAYGAIN_TRACK_GAIN"].text == [f"{-18 - own.integrated_lufs:.2f} dB"]
    assert re.fullmatch(r"\d\.\d{6}", id3["TXXX:REPLAYGAIN_TRACK_PEAK"].text[0])
    assert str(id3["TIT2"]) == "Blue Hour"
    transcode.write_id3(mp3, {"title": "Blue Hour"}, None)  # as before: no loudness, no gain
    assert not ID3(mp3).getall("TXXX")


def test_a_mono_master_makes_mono_variants_and_replaces_the_folder(tmp_path: Path):
    master, normalised = _master(tmp_path, 2.5, channels=1)
    out = tmp_path / "hls"
    (out / "old").mkdir(parents=True)
    (out / "old" / "seg_00009.m4s").write_bytes(b"stale")
    record = streaming.encode_ladder(
        master,
        out,
        loudness=normalised.output,
        timeout=60,
        variants=[streaming.Variant("opus64", "opus", 64, 48_000)],
    )
    assert not (out / "old").exists() and not out.with_name("hls.partial").exists()
    (variant,) = record["variants"]
    assert (variant["channels"], variant["segments"]) == (1, 1)
    assert FLAC(master).info.channels == 1
    assert _stream(_joined(out, "opus64"))[2] == "mono"
    (only,) = m3u8.load(str(out / "opus64" / "index.m3u8")).segments
    assert only.duration == pytest.approx(2.5, abs=1e-5)


def test_an_edit_list_is_inserted_where_there_was_none(ladder):
    folder, _, _ = ladder
    data = (folder / "aac96" / "init.mp4").read_bytes()
    edts = data.index(b"edts") - 4
    size = int.from_bytes(data[edts : edts + 4], "big")
    # the same init without its edts box, the sizes of trak and moov shrunk to match
    bare = bytearray(data[:edts] + data[edts + size :])
    for kind in (b"moov", b"trak"):
        at = bare.index(kind) - 4
        bare[at : at + 4] = (int.from_bytes(bare[at : at + 4], "big") - size).to_bytes(4, "big")
    assert mp4boxes.read_init(bytes(bare)).edits == ()
    patched = mp4boxes.set_edit_list(bytes(bare), media_time=1024, segment_duration=573300)
    assert patched == data  # rebuilt byte for byte, tkhd then edts
    big = mp4boxes.set_edit_list(data, media_time=1024, segment_duration=2**33)
    assert mp4boxes.read_init(big).edits == ((2**33, 1024),)  # version 1, 64-bit fields


def test_playback_loudness_gains_hold_the_true_peak():
    fields = streaming.playback_loudness(-14.2, 6.3, -2.5)
    assert fields["integrated_lufs"] == -14.2 and fields["range_lu"] == 6.3
    gains = {g["target_lufs"]: (g["gain_db"], g["peak_limited"]) for g in fields["gains"]}
    assert gains == {-14.0: (0.2, False), -16.0: (-1.8, False), -23.0: (-8.8, False)}
    quiet = streaming.playback_loudness(-20.0, 3.0, -3.0, targets=(-14.0,))
    assert quiet["gains"] == [{"target_lufs": -14.0, "gain_db": 2.0, "peak_limited": True}]
    silent = streaming.playback_loudness(float("-inf"), float("nan"), float("-inf"))
    assert silent["integrated_lufs"] is None and {g["gain_db"] for g in silent["gains"]} == {0.0}
    assert streaming.r128_track_gain(-14.0) == str(-9 * 256)
    assert transcode.replaygain_tags(ffmpeg.LoudnessStats(-11.5, 4.0, -0.104861)) == {
        "REPLAYGAIN_TRACK_GAIN": "-6.50 dB",
        "REPLAYGAIN_TRACK_PEAK": "0.988000",
    }
    assert transcode.replaygain_tags(ffmpeg.LoudnessStats(float("-inf"), 0, float("-inf"))) == {}


MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:BYTERANGE="700@0",URI="init.mp4"
#EXTINF:5.990748,
seg_00001.m4s
# a comment stays
#EXTINF:2.004536,\r
seg_00002.m4s\r
#EXT-X-ENDLIST
"""


def _sign(uri: str) -> str:
    return f"https://media.example/t/aac160/{uri}?X-Amz-Signature=ab&X-Amz-Expires=60"


def test_media_playlist_rewrite_signs_segments_and_the_map():
    text = streaming.rewrite_media_playlist(MEDIA, _sign)
    playlist = m3u8.loads(text)
    assert [s.uri for s in playlist.segments] == [_sign("seg_00001.m4s"), _sign("seg_00002.m4s")]
    assert playlist.segment_map[0].uri == _sign("init.mp4")
    assert playlist.segment_map[0].byterange == "700@0"
    assert [s.duration for s in playlist.segments] == [5.990748, 2.004536]
    assert "# a comment stays" in text and "\r" not in text and playlist.is_endlist
    with pytest.raises(ValueError):
        streaming.rewrite_media_playlist(MEDIA, lambda uri: f'{uri}"\n#EXT-X-ENDLIST')


def test_master_playlist_rewrite_signs_each_variant(ladder):
    folder, _, _ = ladder
    text = streaming.rewrite_master_playlist(
        (folder / "master.m3u8").read_text(), lambda uri: f"/v1/tracks/t1/hls/{uri}"
    )
    master = m3u8.loads(text)
    assert [p.uri for p in master.playlists] == [
        f"/v1/tracks/t1/hls/{name}/index.m3u8" for name in ("aac160", "aac96", "opus96")
    ]
    assert [p.stream_info.codecs for p in master.playlists][-1] == "opus"
    with_media = '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="en/index.m3u8"\n'
    assert 'URI="/x/en/index.m3u8"' in streaming.rewrite_master_playlist(
        with_media, lambda uri: f"/x/{uri}"
    )
