"""The input gate identifies audio from its bytes and refuses everything else with a clear code."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from mutagen.mp4 import MP4

from tests.support import audio
from trackflow.errors import InputRejected
from trackflow.media.probe import GateLimits, inspect_audio, reconcile_duration, sniff

ACCEPTED = {
    # format: (container reported, codec reported)
    "mp3": ("mp3", "mp3"),
    "flac": ("flac", "flac"),
    "wav": ("wav", "pcm_16bit"),
    "wav24": ("wav", "pcm_24bit"),
    "aiff": ("aiff", "pcm_16bit"),
    "ogg": ("ogg", "vorbis"),
    "opus": ("ogg", "opus"),
    "m4a": ("mp4", "aac"),
    "alac": ("mp4", "alac"),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audio.music(tmp_path_factory.mktemp("probe") / "source.wav", seconds=3.0)


@pytest.mark.parametrize("fmt", sorted(ACCEPTED))
def test_every_accepted_format_is_identified_from_content(fmt: str, source: Path, tmp_path: Path):
    """Each format is recognised even when its name says nothing (no extension)."""
    encoded = audio.encode(source, fmt, tmp_path)
    anonymous = tmp_path / "upload"
    encoded.rename(anonymous)
    info = inspect_audio(anonymous)
    assert (info.format, info.codec) == ACCEPTED[fmt]
    assert info.channels == 2
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert info.sample_rate in (44_100, 48_000)


def test_a_misleading_name_does_not_fool_the_gate(source: Path, tmp_path: Path):
    """A FLAC file called .mp3 is FLAC."""
    flac = audio.encode(source, "flac", tmp_path)
    disguised = flac.rename(tmp_path / "song.mp3")
    assert inspect_audio(disguised).format == "flac"


def test_surround_and_extreme_rates_are_accepted(tmp_path: Path):
    six = tmp_path / "surround.flac"
    audio.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=2", "-ac", "6", "-c:a", "flac", str(six))
    assert inspect_audio(six).channels == 6
    low = tmp_path / "low.wav"
    audio.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=2:sample_rate=8000", str(low))
    assert inspect_audio(low).sample_rate == 8000
    high = tmp_path / "high.flac"
    audio.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=2:sample_rate=192000", str(high))
    assert inspect_audio(high).sample_rate == 192_000


def _rejected(path: Path, limits: GateLimits | None = None) -> str:
    with pytest.raises(InputRejected) as caught:
        inspect_audio(path, limits)
    assert caught.value.message  # a sentence a person can read
    return caught.value.code


def test_empty_file_is_too_short(tmp_path: Path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert _rejected(empty) == "too_short"


def test_half_a_second_is_too_short(tmp_path: Path):
    short = tmp_path / "short.wav"
    audio.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=0.5", str(short))
    assert _rejected(short) == "too_short"


def test_longer_than_the_limit_is_too_long(source: Path, tmp_path: Path):
    assert (
        _rejected(audio.encode(source, "flac", tmp_path), GateLimits(max_duration_s=2))
        == "too_long"
    )


@pytest.mark.parametrize(
    "content",
    [
        b"just some text, not audio at all\n" * 20,
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"%PDF-1.4\n" + bytes(range(256)) * 8,
    ],
    ids=["text", "hls-playlist", "concat-script", "pdf"],
)
def test_non_audio_is_unsupported_even_named_mp3(content: bytes, tmp_path: Path):
    """Playlists and concat scripts that would make ffmpeg open other files never reach it."""
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    assert _rejected(path) == "unsupported_format"


def test_an_image_is_unsupported(tmp_path: Path):
    path = tmp_path / "cover.mp3"
    path.write_bytes(audio.cover())
    assert _rejected(path) == "unsupported_format"


def test_video_without_audio_has_no_audio_stream(tmp_path: Path):
    assert _rejected(audio.video_only_mp4(tmp_path / "video.mp4")) == "no_audio_stream"
    assert _rejected(audio.theora_only_ogg(tmp_path / "video.ogg")) == "no_audio_stream"


def test_garbage_behind_a_valid_header_is_corrupt(source: Path, tmp_path: Path):
    flac = audio.encode(source, "flac", tmp_path)
    data = bytearray(flac.read_bytes())
    data[200:] = bytes(len(data) - 200)  # keep STREAMINFO, zero every frame
    flac.write_bytes(bytes(data))
    assert _rejected(flac) == "corrupt_audio"


def test_sniffer_finds_mp3_behind_an_id3_tag_and_flac_behind_one(source: Path, tmp_path: Path):
    mp3 = audio.tag(audio.encode(source, "mp3", tmp_path), "mp3", cover=audio.cover())
    assert sniff(mp3.read_bytes()[:65536]) == "mp3"
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x00\x00fLaC\x00\x00\x00\x22") == "flac"
    assert sniff(b"\x00" * 1000) is None


def test_an_mp3_whose_cover_art_outgrows_the_first_64_kib_is_accepted(source: Path, tmp_path: Path):
    """Real uploads carry covers of hundreds of KB in their ID3 tag, before the first frame."""
    art = audio.cover(size=800) + bytes(300_000)  # a large picture, as far as ID3 cares
    mp3 = audio.tag(audio.encode(source, "mp3", tmp_path), "mp3", cover=art)
    assert mp3.read_bytes().index(b"\xff\xfb") > 300_000  # the audio starts past 64 KiB
    info = inspect_audio(mp3)
    assert info.format == "mp3" and info.duration_s == pytest.approx(3.0, abs=0.1)


def _claim_shorter(path: Path, factor: float) -> Path:
    """Scale the durations an MP4's movie and media headers (mvhd, mdhd) declare: the header
    then disagrees with the audio its packets hold, as in a 3G2 whose record said 15.0 s."""
    data = bytearray(path.read_bytes())
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box)
        while at != -1:
            # version and flags, then created and modified (4 or 8 bytes each), the timescale
            wide = data[at + 4] == 1
            offset = at + 8 + (16 if wide else 8) + 4
            size, fmt = (8, ">Q") if wide else (4, ">I")
            (duration,) = struct.unpack(fmt, data[offset : offset + size])
            data[offset : offset + size] = struct.pack(fmt, int(duration * factor))
            at = data.find(box, at + 4)
    path.write_bytes(bytes(data))
    return path


def test_an_mp4_whose_header_understates_its_audio_reports_the_stream(source: Path, tmp_path: Path):
    """The header says 1.8 s over 3 s of audio: the gate reports the stream's 3 s."""
    m4a = _claim_shorter(audio.encode(source, "m4a", tmp_path), 0.6)
    assert MP4(m4a).info.length == pytest.approx(1.8, abs=0.1)  # what the header claims
    assert inspect_audio(m4a).duration_s == pytest.approx(3.0, abs=0.05)


def test_a_header_that_hides_hours_does_not_pass_the_duration_limit(source: Path, tmp_path: Path):
    """The limit is checked against the stream: a short header over long audio is too long."""
    m4a = _claim_shorter(audio.encode(source, "m4a", tmp_path), 0.5)
    assert _rejected(m4a, GateLimits(max_duration_s=2.0)) == "too_long"


def test_an_honest_header_is_kept_to_the_sample(source: Path, tmp_path: Path):
    """Within a frame or two of padding the header's exact figure stands."""
    m4a = audio.encode(source, "m4a", tmp_path)
    assert inspect_audio(m4a).duration_s == round(MP4(m4a).info.length, 3)


@pytest.mark.parametrize(
    ("header_s", "stream_s", "believed"),
    [
        (15.0, 16.35, 16.35),  # the 3G2 of issue 28: the packets hold more than mdhd says
        (180.0, 179.98, 180.0),  # encoder padding: the gapless header stands
        (180.0, 180.4, 180.0),
        (180.0, 181.0, 181.0),
        (0.0, 42.0, 42.0),  # no duration in the header
        (42.0, None, 42.0),  # the packets could not be counted
        (42.0, 0.0, 42.0),
    ],
)
def test_the_stream_s_duration_wins_only_beyond_the_tolerance(
    header_s: float, stream_s: float | None, believed: float
):
    """The header's duration, unless the stream differs by more than half a second."""
    assert reconcile_duration(header_s, stream_s) == believed


def test_a_damaged_file_is_refused_in_our_words(tmp_path: Path):
    """mutagen's complaint about a damaged file stays in the log; the message is ours."""
    path = tmp_path / "cache" / "ab12" / "broken.flac"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"fLaC\x00\x00\x00\x22" + bytes(34) + b"\x81\x00\x00\x40" + bytes(5))  # rate 0
    with pytest.raises(InputRejected) as refused:
        inspect_audio(path)
    assert refused.value.code == "corrupt_audio"
    assert refused.value.message == "the file is damaged: its FLAC data cannot be read"
    assert refused.value.detail
