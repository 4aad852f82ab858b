"""Checking that uploaded bytes are a raster image, from the bytes themselves.

The file name and the declared content type of an upload are whatever the client says; Pillow
reads the header and structure of the file instead. Only the formats the web client offers are
taken (PNG, JPEG, GIF, WebP), within a size and pixel budget, so nothing stored can be a script,
an SVG or a decompression bomb.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

IMAGE_MAX_BYTES = 5 * 1024 * 1024  # the web client's own limit (< 5 MB)
IMAGE_MAX_PIXELS = 40_000_000
FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "GIF": ("image/gif", "gif")}
FORMATS["WEBP"] = ("image/webp", "webp")


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why, for the user."""


@dataclass(frozen=True)
class VerifiedImage:
    content: bytes
    content_type: str
    extension: str
    width: int
    height: int


def verify_raster_image(content: bytes) -> VerifiedImage:
    """The image's type and size, or ImageRejected."""
    if not content:
        raise ImageRejected("is empty")
    if len(content) > IMAGE_MAX_BYTES:
        raise ImageRejected(f"is too large (maximum is {IMAGE_MAX_BYTES // (1024 * 1024)} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                kind, size = image.format, image.size
                if kind not in FORMATS:
                    raise ImageRejected("must be a PNG, JPEG, GIF or WebP image")
                if size[0] * size[1] > IMAGE_MAX_PIXELS:
                    raise ImageRejected("has too many pixels")
                image.verify()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("must be a PNG, JPEG, GIF or WebP image") from None
    except Exception:  # truncated or corrupt data surfaces as assorted errors from the decoders
        raise ImageRejected("is not a readable image (truncated or corrupt)") from None
    content_type, extension = FORMATS[kind]
    return VerifiedImage(content, content_type, extension, size[0], size[1])
