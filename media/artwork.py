"""Album art: square renditions in every size a client needs, at 1x and 2x, as JPEG and WebP.

Each is centre-cropped, turned upright (EXIF orientation), converted to sRGB and stripped of
metadata. Hostile images (decompression bombs, absurd dimensions, truncated or corrupt data) are
refused before they are decoded; a refused picture never fails the track.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageOps

from trackflow.logs import get_logger

__all__ = ["ArtworkResult", "Rendition", "render_artwork", "rendition_names"]

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ENCODINGS = {"jpg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
_SRGB = ImageCms.createProfile("sRGB")

log = get_logger(__name__)


@dataclass(frozen=True)
class Rendition:
    name: str  # "300", "300@2x"
    pixels: int
    extension: str
    path: Path
    content_type: str


@dataclass
class ArtworkResult:
    """What became of the track's picture; ``renditions`` is empty unless ``status`` is ok."""

    status: str  # ok | none | refused
    reason: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    upscaled: list[str] = field(default_factory=list)
    renditions: list[Rendition] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"status": self.status}
        if self.reason:
            record["reason"] = self.reason
        if self.source:
            record["source"] = self.source
        if self.renditions:
            record["sizes"] = sorted({r.name for r in self.renditions}, key=_size_order)
        if self.upscaled:
            record["upscaled"] = self.upscaled
        return record


def _size_order(name: str) -> tuple[int, int]:
    base, _, scale = name.partition("@")
    return int(base), 1 if scale else 0


def rendition_names(sizes: Sequence[int]) -> list[tuple[str, int]]:
    """(name, pixels) for every size and its @2x."""
    return [(str(s), s) for s in sizes] + [(f"{s}@2x", 2 * s) for s in sizes]


class ArtworkRefused(Exception):
    """The picture cannot be used; the message says why."""


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.UnidentifiedImageError as exc:
        raise ArtworkRefused("the embedded picture is not an image format we read") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise ArtworkRefused("the embedded picture has no pixels")
    if width * height > max_pixels:
        raise ArtworkRefused(
            f"the embedded picture is {width}x{height}, over the {max_pixels / 1e6:.1f} "
            "megapixel limit"
        )
    return image


def _upright_srgb(image: Image.Image, largest: int) -> Image.Image:
    """Decode (at a reduced scale when JPEG allows it), turn upright and convert to sRGB RGB."""
    icc = image.info.get("icc_profile")
    if image.format == "JPEG":
        short = min(image.size)
        # draft() decodes at 1/2, 1/4 or 1/8 scale while staying at least this large.
        image.draft(
            "RGB" if image.mode != "CMYK" else "CMYK",
            (image.size[0] * largest // short, image.size[1] * largest // short),
        )
    image.load()
    image = ImageOps.exif_transpose(image)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            image = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB") or image
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: fall back to treating the pixels as sRGB
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _centre_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def render_artwork(
    data: bytes | None,
    out_dir: Path,
    sizes: Sequence[int],
    *,
    max_pixels: int = 16_800_000,
    max_bytes: int = 20 * 1024 * 1024,
) -> ArtworkResult:
    """Write every size of ``data`` and its @2x, as JPEG and WebP, into ``out_dir``; never
    raises for a bad picture."""
    names = rendition_names(sizes)
    if not data:
        return ArtworkResult(status="none", reason="no artwork")
    if len(data) > max_bytes:
        return ArtworkResult(status="refused", reason=f"the picture is over {max_bytes >> 20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open_checked(data, max_pixels)
            source = {"width": image.size[0], "height": image.size[1], "format": image.format}
            largest = max(pixels for _, pixels in names)
            square = _centre_square(_upright_srgb(image, largest))
    except ArtworkRefused as exc:
        return ArtworkResult(status="refused", reason=str(exc))
    # Pillow's messages name its buffers by memory address ("<_io.BytesIO object at 0x...>"):
    # the reason shown is ours, Pillow's goes to the log
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        log.info("artwork_refused", error=f"{type(exc).__name__}: {exc}")
        return ArtworkResult(status="refused", reason="the picture is over the megapixel limit")
    except (OSError, ValueError, SyntaxError) as exc:
        log.info("artwork_refused", error=f"{type(exc).__name__}: {exc}")
        return ArtworkResult(status="refused", reason="the picture is damaged")
    side = square.size[0]
    source["crop_side"] = side
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ArtworkResult(status="ok", source=source)
    by_pixels: dict[int, Image.Image] = {}
    for name, pixels in sorted(names, key=lambda n: -n[1]):
        if pixels > side:
            result.upscaled.append(name)
        resized = by_pixels.get(pixels)
        if resized is None:
            resized = square.resize((pixels, pixels), Image.Resampling.LANCZOS, reducing_gap=3.0)
            by_pixels[pixels] = resized
        for extension, (pil_format, content_type) in ENCODINGS.items():
            path = out_dir / f"{name}.{extension}"
            _save(resized, path, pil_format)
            result.renditions.append(Rendition(name, pixels, extension, path, content_type))
    result.upscaled.sort(key=_size_order)
    return result


def _save(image: Image.Image, path: Path, pil_format: str) -> None:
    """Encode without any metadata (no EXIF, no ICC: untagged pixels are sRGB)."""
    if pil_format == "JPEG":
        image.save(path, "JPEG", quality=85, optimize=True, progressive=image.size[0] >= 100)
    else:
        image.save(path, "WEBP", quality=80, method=4)
