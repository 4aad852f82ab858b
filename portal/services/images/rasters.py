"""Which bytes count as an image: raster formats only, recognised from their magic numbers.

An image file is shown by browsers, so its declared content type is a claim, not a fact: an
operator's template could carry an HTML page or an SVG (which runs script) labelled
`image/png`. Everything that stores or serves an image asks this module what the bytes really
are (`filetype` reads the magic numbers) and accepts only PNG, JPEG, GIF and WebP whose bytes
match the declared type. docs/images.md states the rules and the size limit.
"""

from __future__ import annotations

import filetype

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
