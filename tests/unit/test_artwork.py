"""Artwork: every size at 1x and 2x, square, upright, sRGB, without metadata; bad pictures are
refused without failing anything."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageCms

from trackflow.media.artwork import render_artwork

SIZES = (16, 20, 32, 47, 67, 100, 300, 500)


def _jpeg(width: int, height: int, **save: object) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    for x in range(0, width, 40):  # some structure to compress
        image.paste((30, 30, 200), (x, 0, x + 10, height))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save)
    return buffer.getvalue()


def test_every_size_and_its_2x_as_jpeg_and_webp(tmp_path: Path):
    result = render_artwork(_jpeg(1600, 1200), tmp_path, SIZES)
    assert result.status == "ok"
    assert len(result.renditions) == 32
    for rendition in result.renditions:
        with Image.open(rendition.path) as image:
            assert image.size == (rendition.pixels, rendition.pixels)
            assert image.format == ("JPEG" if rendition.extension == "jpg" else "WEBP")
            assert "exif" not in image.info and "icc_profile" not in image.info
    assert {r.name for r in result.renditions} >= {"16", "16@2x", "500", "500@2x"}
    assert result.upscaled == []
    assert result.source["crop_side"] == 1200


def test_small_sources_are_upscaled_and_the_record_says_so(tmp_path: Path):
    result = render_artwork(_jpeg(300, 300), tmp_path, SIZES)
    assert result.status == "ok"
    assert result.upscaled == ["300@2x", "500", "500@2x"]
    assert result.as_record()["upscaled"] == ["300@2x", "500", "500@2x"]


def test_exif_orientation_is_applied(tmp_path: Path):
    """A photo stored sideways with orientation 6 (turn 90 degrees clockwise to display) comes
    out upright: the blue band along the stored top edge ends on the right, not on top."""
    image = Image.new("RGB", (400, 200), (255, 255, 255))
    image.paste((0, 0, 255), (0, 0, 400, 50))  # blue along the top edge as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    result = render_artwork(buffer.getvalue(), tmp_path, (100,))
    with Image.open(next(r.path for r in result.renditions if r.name == "100@2x")) as out:
        top, right = out.getpixel((100, 5)), out.getpixel((195, 100))
    assert right[2] > 200 and right[0] < 60
    assert top[0] > 200


def test_pictures_with_an_icc_profile_come_out_untagged_srgb(tmp_path: Path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = render_artwork(_jpeg(200, 200, icc_profile=profile), tmp_path, (16,))
    assert result.status == "ok"
    with Image.open(result.renditions[0].path) as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path):
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # tiny file, 400 megapixels
    result = render_artwork(bomb.getvalue(), tmp_path, SIZES)
    assert result.status == "refused"
    assert "megapixel" in result.reason
    assert result.renditions == []


def test_truncated_and_garbage_pictures_are_refused(tmp_path: Path):
    whole = _jpeg(800, 800)
    assert render_artwork(whole[: len(whole) // 3], tmp_path, SIZES).status == "refused"
    assert render_artwork(b"\x00not an image" * 50, tmp_path, SIZES).status == "refused"


def test_no_picture_is_no_artwork(tmp_path: Path):
    result = render_artwork(None, tmp_path, SIZES)
    assert (result.status, result.reason) == ("none", "no artwork")


def test_transparency_is_flattened_on_white(tmp_path: Path):
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    result = render_artwork(buffer.getvalue(), tmp_path, (16,))
    with Image.open(result.renditions[0].path) as out:
        assert out.mode == "RGB" and out.getpixel((8, 8))[0] > 240
