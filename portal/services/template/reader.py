"""Reading a template file as a stream (ijson), so memory does not grow with the file.

A production template is ~400 MB of JSON, almost all of it base64 image data. The reader walks
the file's parse events once: every top-level value except `images` is built as usual (records
are small: a few MB in all), and each `images` entry is built on its own, handed to the
`ImageCatalog` (decoded, checked, spooled to disk) and dropped before the next one is read. Peak
memory is therefore the records plus the largest image (its base64 text and its bytes), whatever
the file's size (docs/template-format.md, *Memory*).

JSON errors are fatal (the rest of the file cannot be read); everything else is collected for
validation to report at once. Duplicate keys, which `json.loads` would silently collapse, are
problems too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from portal.services.template.errors import TemplateError
from portal.services.template.imagefiles import ImageCatalog

MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
EXACT_POSITION_LIMIT = 64 * 1024 * 1024  # re-read files up to this size to locate a JSON error
# ijson's read size. yajl copies a token that spans reads into a growing buffer, so a 5 MB base64
# string read 64 KiB at a time costs ~80 copies of itself: the 400 MB production file parsed in
# 10 s with the default and in 0.9 s with 8 MiB reads (measured). Memory: one read, a constant.
READ_CHUNK = 8 * 1024 * 1024


class _Counting:
    """A binary reader that skips a UTF-8 BOM and remembers how far it has read, so a JSON
    error in a file too large to re-read can still be located roughly (by byte offset)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.offset = 0
        self.previous = 0  # the offset at the start of the last chunk
        head = raw.read(len(BOM))
        self.pending = b"" if head == BOM else head

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes the stream's type with read(0)
            return b""
        chunk = self.pending + self.raw.read(size if size < 0 else max(0, size - len(self.pending)))
        self.pending = b""
        self.previous = self.offset
        self.offset += len(chunk)
        return chunk


class _Duplicate:
    """A duplicate key met while building: recorded, the first value is kept."""

    def __init__(self) -> None:
        self.keys: list[str] = []


def _build(events: Iterator[tuple[str, Any]], event: str, value: Any, dups: _Duplicate) -> Any:
    """The JSON value that starts with (event, value), built from the following events."""
    if event == "start_map":
        root: Any = {}
    elif event == "start_array":
        root = []
    else:
        return value
    stack: list[list[Any]] = [[root, None]]  # [container, pending key]
    for event, value in events:
        frame = stack[-1]
        if event == "map_key":
            frame[1] = value
            continue
        if event in ("end_map", "end_array"):
            stack.pop()
            if not stack:
                return root
            continue
        if event == "start_map":
            item: Any = {}
        elif event == "start_array":
            item = []
        else:
            item = value
        container, key = frame
        if isinstance(container, dict):
            if key in container:
                dups.keys.append(key)
            else:
                container[key] = item
        else:
            container.append(item)
        if event in ("start_map", "start_array"):
            if len(stack) >= MAX_DEPTH:
                raise TemplateError(f"JSON nested deeper than {MAX_DEPTH} levels")
            stack.append([item, None])
    raise TemplateError("the JSON text ends inside a value")


def _skip(events: Iterator[tuple[str, Any]], event: str) -> None:
    if event not in ("start_map", "start_array"):
        return
    depth = 1
    for event, _value in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return


def _json_error(exc: Exception, reader: _Counting, path: Path | None, source: str) -> TemplateError:
    """A readable JSON error: exact line and column when the file is small enough to re-read
    with the standard parser, else the byte range of the chunk it is in."""
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1].encode().decode("unicode_escape", errors="replace")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "UTF8" in first:
        return TemplateError(f"{source}: not UTF-8 text ({first})")
    if path is not None:
        try:
            if path.stat().st_size <= EXACT_POSITION_LIMIT:
                json.loads(path.read_bytes().decode("utf-8-sig", errors="replace"))
        except json.JSONDecodeError as exact:
            return TemplateError(
                f"{source}: not valid JSON: {exact.msg} at line {exact.lineno} column {exact.colno}"
            )
        except (OSError, ValueError, RecursionError):
            pass
    return TemplateError(
        f"{source}: not valid JSON: {first} (between bytes {reader.previous} and {reader.offset})"
    )


def read_template_stream(
    stream: BinaryIO, catalog: ImageCatalog, *, source: str, path: Path | None = None
) -> dict[str, Any]:
    """Read a template file; return its document without `images` (each image went to
    `catalog`). Raises TemplateError for text that is not JSON or not a JSON object."""
    reader = _Counting(stream)
    dups = _Duplicate()
    document: dict[str, Any] = {}
    events: Iterator[tuple[str, Any]] = iter(
        ijson.basic_parse(reader, use_float=True, buf_size=READ_CHUNK)
    )
    try:
        event, _value = next(events, ("end", None))
        if event != "start_map":
            raise TemplateError(f"{source}: a template must be a JSON object")
        for event, key in events:
            if event == "end_map":
                break
            event, value = next(events)
            if key in document or (key == "images" and catalog.present):
                dups.keys.append(key)
                _skip(events, event)
            elif key == "images":
                catalog.present = True
                if event != "start_map":
                    catalog.structure.append(("images: must be an object keyed by checksum", None))
                    _skip(events, event)
                    continue
                for event, checksum in events:
                    if event == "end_map":
                        break
                    event, value = next(events)
                    catalog.accept(checksum, _build(events, event, value, dups))
            else:
                document[key] = _build(events, event, value, dups)
        for _ in events:  # the rest must be nothing but whitespace (ijson checks)
            pass
    except ijson.JSONError as exc:
        raise _json_error(exc, reader, path, source) from None
    except TemplateError as exc:
        if str(exc).startswith(source):
            raise
        raise TemplateError(f"{source}: {exc}") from None
    if dups.keys:
        names = ", ".join(repr(k) for k in list(dict.fromkeys(dups.keys))[:5])
        catalog.structure.append(
            ("duplicate key in a JSON object (ambiguous: which value is meant?)", names)
        )
    return document


def read_template_file(path: str | Path, catalog: ImageCatalog) -> dict[str, Any]:
    """`read_template_stream` on a file; TemplateError (naming the file) if it cannot be read."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        return read_template_stream(handle, catalog, source=str(path), path=path)
