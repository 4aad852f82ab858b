"""Deterministic PNG images written with zlib and struct only.

The template needs real image files (105 distinct ones) so that image storage, sharing and
purging are exercised for real, but it must not depend on an imaging library or on files in the
repository. Each picture is a function of (kind, index[, size]): the same call always returns
the same bytes, so checksums are stable from run to run.

`render_picture` draws a small 32x32 figure (a few hundred bytes). `render_large_picture` makes
an image of a given size in bytes, like the production template's artwork (1.8-3.7 MB each):
its pixels are pseudo-random and stored uncompressed, so the file really is that large and no
compression anywhere can make the size figures look better than they are.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

SIZE = 32
PICTURE_KINDS = ("icon", "weapon", "portrait", "emblem", "juncture", "banner", "vehicle")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(width: int, height: int, rows: list[bytes], level: int = 9) -> bytes:
    """An 8-bit RGB PNG from `rows` (each width*3 bytes), zlib at `level`."""
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )


LARGE_WIDTH = 1024  # pixels; a row is 3 * 1024 bytes plus its filter byte


def render_large_picture(kind: str, index: int, size: int) -> bytes:
    """A PNG of about `size` bytes (within one row, 3 KB) for picture `index` of `kind`:
    pseudo-random pixels (SHAKE-256 of the picture's name, so deterministic and fast), stored
    without compression (zlib level 0)."""
    if kind not in PICTURE_KINDS:
        raise ValueError(f"unknown picture kind {kind!r}")
    row = LARGE_WIDTH * 3
    height = max(1, (size - 100) // (row + 1))
    noise = hashlib.shake_256(f"{kind}:{index}:{size}".encode()).digest(row * height)
    rows = [noise[y * row : (y + 1) * row] for y in range(height)]
    return encode_png(LARGE_WIDTH, height, rows, level=0)


def _colours(kind: str, index: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(f"{kind}:{index}".encode()).digest()
    background = (digest[0] // 2, digest[1] // 2, digest[2] // 2)
    foreground = (128 + digest[3] // 2, 128 + digest[4] // 2, 128 + digest[5] // 2)
    return background, foreground


def _inside(kind: str, index: int, x: int, y: int) -> bool:
    """Whether pixel (x, y) belongs to the figure: one simple shape per kind."""
    c = SIZE // 2
    if kind == "icon":  # a disc whose radius varies with the index
        r = 6 + index % 8
        return (x - c) ** 2 + (y - c) ** 2 <= r * r
    if kind == "weapon":  # diagonal blade
        return abs(x - y) <= 1 + index % 3
    if kind == "portrait":  # head and shoulders
        return (x - c) ** 2 + (y - 11) ** 2 <= 36 or (y > 20 and abs(x - c) < 4 + (y - 20))
    if kind == "emblem":  # diamond
        return abs(x - c) + abs(y - c) <= 8 + index
    if kind == "juncture":  # horizontal bands
        return (y // (3 + index)) % 2 == 0
    if kind == "vehicle":  # a wheel
        return 36 <= (x - c) ** 2 + (y - c) ** 2 <= 100 + 4 * index
    return (x // 8 + y // 8) % 2 == 0  # banner: checkerboard


def render_picture(kind: str, index: int) -> bytes:
    """The PNG for picture `index` of `kind` (see PICTURE_KINDS); deterministic."""
    if kind not in PICTURE_KINDS:
        raise ValueError(f"unknown picture kind {kind!r}")
    background, foreground = _colours(kind, index)
    bg, fg = bytes(background), bytes(foreground)
    rows = [
        b"".join(fg if _inside(kind, index, x, y) else bg for x in range(SIZE)) for y in range(SIZE)
    ]
    return encode_png(SIZE, SIZE, rows)
