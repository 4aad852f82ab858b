"""Which bytes count as an image: raster formats only, recognised from their magic numbers.

An image file is shown by browsers, so its declared content type is a claim, not a fact: an
operator's template could carry an HTML page or an SVG (which runs script) labelled
`image/png`. Everything that stores or serves an image asks this module what the bytes really
are (`filetype` reads the magic numbers) and accepts only PNG, JPEG, GIF and WebP whose bytes
match the declared type. docs/images.md states the rules and the size limit. An upload from a
client is also opened by Pillow (`verify_raster_image`): its structure and pixel budget too.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import filetype
from PIL import Image, UnidentifiedImageError

# The content types accepted, in the order messages list them.
RASTER_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
# filetype names an animated PNG image/apng: still a PNG file (same signature), served as one.
_ALIASES = {"image/apng": "image/png"}
# filetype looks at the first 8 KiB at most; its image matchers need far fewer.
HEAD_BYTES = 262
DEFAULT_MAX_IMAGE_BYTES = 25 * 1024 * 1024


def raster_type(content: bytes) -> str | None:
    """The raster content type the bytes start with, or None (not PNG/JPEG/GIF/WebP)."""
    kind = filetype.guess(content[:HEAD_BYTES])
    if kind is None:
        return None
    mime = _ALIASES.get(kind.mime, kind.mime)
    return mime if mime in RASTER_TYPES else None


def _looks_like(content: bytes) -> str:
    """A hint for the refusal message: what the bytes look like when they are no raster."""
    kind = filetype.guess(content[:HEAD_BYTES])
    if kind is not None:
        return str(kind.mime)
    head = content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head):
        return "SVG"
    if head.startswith((b"<!doctype html", b"<html")) or b"<script" in head or b"<body" in head:
        return "HTML"
    if head.startswith(b"<"):
        return "markup"
    return "unrecognised data"


def raster_problem(content: bytes, declared: str, max_bytes: int) -> str | None:
    """Why `content` (declared `declared`) may not be stored as an image, or None if it may.

    The message says what was declared and what the bytes are, so an operator can tell a
    mislabelled JPEG from a page that has no business in an image store."""
    if len(content) > max_bytes:
        return f"is {len(content)} bytes; the limit is {max_bytes}"
    if not content:
        return "is empty"
    declared_type = declared.strip().lower()
    if declared_type not in RASTER_TYPES:
        return (
            f"content_type {declared!r} is not accepted; only raster images are "
            f"({', '.join(RASTER_TYPES)})"
        )
    actual = raster_type(content)
    if actual is None:
        return f"declared {declared_type} but the bytes are {_looks_like(content)}, not an image"
    if actual != declared_type:
        return f"declared {declared_type} but the bytes are {actual}"
    return None


# -- uploads from clients ------------------------------------------------------------------

UPLOAD_MAX_BYTES = 5 * 1024 * 1024  # the web client's own limit (< 5 MB)
UPLOAD_MAX_PIXELS = 40_000_000
# What Pillow calls each accepted type, and the file extension a stored upload gets.
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


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
    """An uploaded image (a campaign's picture from the web client): its type from the magic
    numbers by the same rule as every stored image (`raster_type`), then its structure and
    pixel budget read by Pillow, so a decompression bomb or a truncated file is refused too.
    ImageRejected says why, for the user."""
    if not content:
        raise ImageRejected("is empty")
    if len(content) > UPLOAD_MAX_BYTES:
        raise ImageRejected(f"is too large (maximum is {UPLOAD_MAX_BYTES // (1024 * 1024)} MB)")
    content_type = raster_type(content)
    if content_type is None:
        raise ImageRejected("must be a PNG, JPEG, GIF or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                kind, size = image.format, image.size
                if kind != PILLOW_FORMATS[content_type]:
                    raise ImageRejected("must be a PNG, JPEG, GIF or WebP image")
                if size[0] * size[1] > UPLOAD_MAX_PIXELS:
                    raise ImageRejected("has too many pixels")
                image.verify()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("must be a PNG, JPEG, GIF or WebP image") from None
    except Exception:  # truncated or corrupt data surfaces as assorted errors from the decoders
        raise ImageRejected("is not a readable image (truncated or corrupt)") from None
    return VerifiedImage(content, content_type, EXTENSIONS[content_type], size[0], size[1])
