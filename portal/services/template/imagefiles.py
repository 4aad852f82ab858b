"""The images of a template being imported: checked one at a time, held on disk, not in memory.

A production template carries ~100 distinct images of several MB each. Whatever reads them (the
streamed file reader, an in-memory document, the generator) hands each image entry to
`ImageCatalog.accept` as soon as it has it: the entry is decoded, checked (size limit, byte
count, SHA-256, raster type from its bytes) and its bytes go to an `ImageSource` (a spool
directory for files), so peak memory is one image, not the file. The writer later reads them
back one at a time (docs/template-format.md, *Memory*).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from portal.services.images.rasters import DEFAULT_MAX_IMAGE_BYTES, raster_problem

CHECKSUM_RE = re.compile(r"^[0-9a-f]{64}$")
IMAGE_KEYS = ("content_type", "byte_size", "data")


@dataclass(frozen=True)
class ImageInfo:
    """A checked image: its verified content type and size (the bytes are in the source)."""

    content_type: str
    byte_size: int


class ImageSource(Protocol):
    """Where the writer reads a checked image's bytes from, one image at a time."""

    def read(self, checksum: str) -> bytes: ...

    def keep(self, checksum: str, content: bytes) -> None: ...


class InlineImages:
    """Images held in memory (small documents: tests, the docs example)."""

    def __init__(self) -> None:
        self._content: dict[str, bytes] = {}

    def keep(self, checksum: str, content: bytes) -> None:
        self._content[checksum] = content

    def read(self, checksum: str) -> bytes:
        return self._content[checksum]


class SpooledImages:
    """Images written to a private temporary directory, one file per checksum; removed by
    `close()` (use as a context manager)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="template-images-", dir=directory))

    def keep(self, checksum: str, content: bytes) -> None:
        (self.root / checksum).write_bytes(content)

    def read(self, checksum: str) -> bytes:
        return (self.root / checksum).read_bytes()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SpooledImages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def short(checksum: str) -> str:
    """How messages name an image: its checksum's first 16 hex digits."""
    return repr(checksum[:16] + "…") if len(checksum) > 16 else repr(checksum)


@dataclass
class ImageCatalog:
    """The checked images of one template, and what was wrong with the others."""

    source: ImageSource
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    infos: dict[str, ImageInfo] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # present, but with problems
    # (rule, checksum, detail): reported by validation, which knows the images' file names
    problems: list[tuple[str, str, str | None]] = field(default_factory=list)
    structure: list[tuple[str, str | None]] = field(default_factory=list)  # (rule, detail)
    present: bool = False  # the document had an `images` object
    bytes_total: int = 0

    def _refuse(self, checksum: str, rule: str, detail: str | None = None) -> None:
        self.refused.add(checksum)
        self.problems.append((f"images[*]{rule}", checksum, detail))

    def accept(self, checksum: Any, entry: Any) -> None:
        """Check one `images` entry; keep its bytes in the source if it passes."""
        if not isinstance(checksum, str) or not CHECKSUM_RE.match(checksum):
            self.structure.append(
                ("images: keys must be lowercase hex SHA-256 checksums", repr(checksum)[:80])
            )
            return
        if checksum in self.infos or checksum in self.refused:
            self._refuse(checksum, ": duplicate key")
            return
        if not isinstance(entry, dict):
            self._refuse(checksum, ": must be an object", type(entry).__name__)
            return
        for key in entry:
            if key not in IMAGE_KEYS:
                self._refuse(checksum, f".{key}: unknown field")
        missing = [key for key in IMAGE_KEYS if key not in entry]
        for key in missing:
            self._refuse(checksum, f".{key}: missing field")
        if missing:
            return
        declared, size, data = entry["content_type"], entry["byte_size"], entry["data"]
        if not isinstance(declared, str):
            self._refuse(checksum, ".content_type: must be a string")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            self._refuse(checksum, ".byte_size: must be a non-negative integer", repr(size))
        if not isinstance(data, str):
            self._refuse(checksum, ".data: must be a base64 string")
        if checksum in self.refused:
            return
        if size > self.max_bytes or len(data) > self.max_bytes * 4 // 3 + 4:
            self._refuse(
                checksum,
                f": larger than the image size limit of {self.max_bytes} bytes",
                f"{max(size, len(data) * 3 // 4)} bytes",
            )
            return
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            self._refuse(checksum, ".data: is not valid base64", str(exc))
            return
        if len(content) != size:
            self._refuse(checksum, ".byte_size: differs from the data", f"{size} vs {len(content)}")
            return
        del data, entry
        self.accept_content(checksum, declared, content)

    def accept_content(self, checksum: str, declared: str, content: bytes) -> None:
        """Check decoded image bytes (checksum, raster type, size); keep them if they pass."""
        actual = hashlib.sha256(content).hexdigest()
        if actual != checksum:
            self._refuse(checksum, ": checksum mismatch", f"the data hashes to {actual[:16]}…")
            return
        problem = raster_problem(content, declared, self.max_bytes)
        if problem is not None:
            self._refuse(
                checksum, ": refused: only PNG, JPEG, GIF or WebP matching content_type", problem
            )
            return
        self.source.keep(checksum, content)
        self.infos[checksum] = ImageInfo(declared.strip().lower(), len(content))
        self.bytes_total += len(content)


def inline_catalog(raw: Any, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> ImageCatalog:
    """The catalog of an in-memory document's `images` object (base64 data inline)."""
    catalog = ImageCatalog(InlineImages(), max_bytes)
    if raw is None:
        return catalog
    catalog.present = True
    if not isinstance(raw, dict):
        catalog.structure.append(
            ("images: must be an object keyed by checksum", type(raw).__name__)
        )
        return catalog
    for checksum, entry in raw.items():
        catalog.accept(checksum, entry)
    return catalog
