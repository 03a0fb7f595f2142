"""What users read about a bad upload is a sentence of ours: no tool output, no memory address,
no path on the worker (the raw detail goes to the log)."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import pytest
from mutagen.flac import FLAC, Picture
from PIL import Image

from tests.support import audio, badinputs
from trackflow.errors import TrackflowError
from trackflow.media import artwork, ffmpeg, waveform
from trackflow.media.probe import _skip_id3v2, inspect_audio

# Pieces of a message that only a tool's output or the worker's state could have put there.
FORBIDDEN = ("/", "\\", "0x", "ffmpeg", "cache", "@")


def _popm_mp3(folder: Path, source: Path) -> Path:
    """A 'bad POPM frame' MP3: a malformed ID3 popularity frame over a single cut MPEG frame,
    which the sniffer takes and ffmpeg cannot open."""
    path = audio.encode(source, "mp3", folder)
    body = path.read_bytes()
    body = body[_skip_id3v2(body) :]
    popm = b"POPM" + struct.pack(">I", 3) + b"\x00\x00" + b"a\x00"
    path.write_bytes(b"ID3\x03\x00\x00" + bytes([0, 0, 0, len(popm)]) + popm + body[:600])
    return path


def _short_picture_flac(folder: Path, source: Path) -> Path:
    """A FLAC whose picture block declares more picture data than the block holds."""
    path = audio.encode(source, "flac", folder)
    flac = FLAC(path)
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/jpeg", b"\xff\xd8" + bytes(300)
    flac.add_picture(picture)
    flac.save()
    data = bytearray(path.read_bytes())
    at = data.find(picture.data)
    (length,) = struct.unpack(">I", data[at - 4 : at])
    data[at - 4 : at] = struct.pack(">I", length + 1000)
    path.write_bytes(bytes(data))
    return path


MAKERS = {
    **{name: make for name, (make, _) in badinputs.CORPUS.items()},
    "mp3 with a bad POPM frame": _popm_mp3,
    "flac with a short picture block": _short_picture_flac,
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audio.music(tmp_path_factory.mktemp("messages") / "source.wav", seconds=4.0)


def _error_of(path: Path) -> TrackflowError | None:
    """The error the gate, or else the waveform's full decode, ends this upload with."""
    try:
        info = inspect_audio(path)
        waveform.analyse_audio(
            path, info, samples_per_pixel=512, sample_rate=44100, silence_dbfs=-60, timeout=120
        )
    except TrackflowError as error:
        return error
    return None


def _assert_ours(message: str, path: Path) -> None:
    lowered = message.lower()
    leaked = [piece for piece in FORBIDDEN if piece in lowered]
    assert not leaked, f"{message!r} shows {leaked}"
    assert str(path) not in message and path.name not in message
    assert path.parent.name not in message


@pytest.mark.parametrize("name", list(MAKERS))
def test_no_bad_upload_shows_tool_output_addresses_or_paths(
    name: str, source: Path, tmp_path: Path
):
    """Every bad input is refused with a sentence of ours, its tool output left to the log."""
    # laid out as the worker's object cache is: the path a raw message would have shown
    folder = tmp_path / "cache" / hashlib.sha256(name.encode()).hexdigest()
    folder.mkdir(parents=True)
    path = MAKERS[name](folder, source)

    error = _error_of(path)

    assert error is not None, f"{name} was accepted"
    _assert_ours(error.message, path)
    assert set(error.as_record()) == {"code", "message"}  # the detail is never recorded


def test_a_decoder_failure_keeps_ffmpeg_s_words_for_the_log(source: Path, tmp_path: Path):
    """ffmpeg's own words (its addresses, the path) stay in ``detail``, not in the message."""
    folder = tmp_path / "cache" / "0123abcd"
    folder.mkdir(parents=True)
    path = _popm_mp3(folder, source)

    error = _error_of(path)

    assert error is not None and error.code == "corrupt_audio"
    assert error.detail and "0x" in error.detail  # what the log gets
    _assert_ours(error.message, path)


def test_a_failed_ffmpeg_run_says_so_in_our_words(tmp_path: Path):
    """A failing ffmpeg run raises FfmpegFailed with a fixed sentence."""
    missing = tmp_path / "cache" / "feed" / "gone.flac"
    with pytest.raises(ffmpeg.FfmpegFailed) as failed:
        ffmpeg.run([*ffmpeg.input_args(missing, "flac"), "-f", "null", "-"], timeout=30)
    _assert_ours(failed.value.message, missing)
    assert str(missing) in (failed.value.detail or "")


def test_a_missing_loudness_summary_says_so_in_our_words():
    """No ebur128 summary: a fixed sentence, not ffmpeg's name."""
    with pytest.raises(ffmpeg.FfmpegFailed) as failed:
        ffmpeg.parse_ebur128_summary("[Parsed_ebur128_0 @ 0x55d0] nothing here")
    assert "ffmpeg" not in failed.value.message.lower() and "0x" not in failed.value.message


def _picture(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((300, 300), 50).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    return buffer.getvalue()


OUR_REASONS = {
    "the embedded picture is not an image format we read",
    "the picture is damaged",
    "the picture is over the megapixel limit",
}


@pytest.mark.parametrize(
    "picture",
    [
        pytest.param(b"not a picture at all", id="not an image"),
        pytest.param(_picture("JPEG")[:4000], id="truncated jpeg"),
        pytest.param(_picture("PNG")[:5000], id="truncated png"),
        pytest.param(_bomb(), id="decompression bomb"),
    ],
)
def test_a_refused_picture_gives_a_reason_of_ours(picture: bytes, tmp_path: Path):
    """Pillow's own words never become the artwork's reason: one of our sentences does."""
    # no megapixel limit of ours: Pillow's own bomb check is what refuses the bomb
    result = artwork.render_artwork(picture, tmp_path / "art", [100], max_pixels=10**10)
    assert result.status == "refused"
    assert result.reason in OUR_REASONS
