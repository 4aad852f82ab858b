"""Validation of a template document, before anything is written.

Import must either load the whole template or change nothing, and a half-validated file is the
classic way to end up with stored image files and no rows (or rows pointing nowhere). So every
check runs here, on plain data: schema, types, lengths, references, duplicates, prerequisite
cycles, image data and checksums. The result is a `ValidTemplate` the writer can trust.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from portal.services.template.document import (
    ATTACHMENT_FIELDS,
    CAMPAIGN_FIELDS,
    CAMPAIGN_REF,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_FIELDS,
    MAX_IMAGE_BYTES,
    MAX_REF_LENGTH,
    NATURAL_KEYS,
    POSITION_FIELDS,
    SECTIONS,
    TOP_LEVEL_KEYS,
    Field,
)
from portal.services.template.errors import TemplateError

MAX_TEXT_LENGTH = 200_000
INT_RANGE = (-(2**31), 2**31 - 1)
CHECKSUM_RE = re.compile(r"^[0-9a-f]{64}$")
UNSAFE_FILENAME_RE = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Image:
    content_type: str
    content: bytes


@dataclass
class ValidTemplate:
    """A document that passed every check; records keep their document field names."""

    campaign: dict[str, Any]
    sections: dict[str, list[dict[str, Any]]]  # schticks in prerequisite order (parents first)
    positions: list[dict[str, Any]]
    images: dict[str, Image]  # checksum -> image
    section_of: dict[str, str] = field(default_factory=dict)  # ref -> section ("campaign" too)

    def attachment_count(self) -> int:
        total = len(self.campaign["attachments"])
        return total + sum(len(r["attachments"]) for rs in self.sections.values() for r in rs)


def _fail(path: str, message: str) -> TemplateError:
    return TemplateError(f"{path}: {message}")


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _check_no_nul(value: Any, path: str) -> None:
    """PostgreSQL cannot store NUL in text or JSONB; refuse it here rather than mid-transaction."""
    if isinstance(value, str):
        if "\x00" in value:
            raise _fail(path, "contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, f"{path} (key)")
            _check_no_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_no_nul(item, f"{path}[{i}]")


def _check_value(value: Any, spec: Field, path: str) -> None:
    if value is None:
        if not spec.nullable:
            raise _fail(path, "must not be null")
        return
    kind = spec.kind
    if kind in ("string", "text", "ref"):
        if not isinstance(value, str):
            raise _fail(path, f"must be a string, got {_type_name(value)}")
        limit = spec.max_length or (MAX_REF_LENGTH if kind == "ref" else MAX_TEXT_LENGTH)
        if len(value) > limit:
            raise _fail(path, f"is {len(value)} characters long; the limit is {limit}")
        if kind != "text" and not value.strip():
            raise _fail(path, "must not be blank")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"must be an integer, got {_type_name(value)}")
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise _fail(path, f"integer {value} is out of range")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, f"must be a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise _fail(path, "must be a finite number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(path, f"must be true or false, got {_type_name(value)}")
    elif kind in ("list", "refs", "attachments"):
        if not isinstance(value, list):
            raise _fail(path, f"must be an array, got {_type_name(value)}")
    elif kind == "object" and not isinstance(value, dict):
        raise _fail(path, f"must be an object, got {_type_name(value)}")
    _check_no_nul(value, path)


def _check_object(
    value: Any, fields: dict[str, Field], path: str, extra: tuple[str, ...] = ()
) -> None:
    """Exactly the declared keys (plus `extra`), each of the declared type."""
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object, got {_type_name(value)}")
    allowed = set(fields) | set(extra)
    for key in value:
        if key not in allowed:
            raise _fail(f"{path}.{key}", "unknown field")
    for name in (*extra, *fields):
        if name not in value:
            raise _fail(f"{path}.{name}", "missing field")
    for name, spec in fields.items():
        _check_value(value[name], spec, f"{path}.{name}")


def _record_path(section: str, index: int, record: Any) -> str:
    ref = record.get("ref") if isinstance(record, dict) else None
    return f"{section}[{index}]" + (f" (ref {ref!r})" if isinstance(ref, str) else "")


def _check_header(data: Any) -> None:
    if not isinstance(data, dict):
        raise _fail("$", f"a template must be a JSON object, got {_type_name(data)}")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _fail(key, "unknown top-level field")
    if data.get("format") != FORMAT_NAME:
        raise _fail("format", f"must be {FORMAT_NAME!r}, got {data.get('format')!r}")
    version = data.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise _fail(
            "version", f"unsupported version {version!r}; this build reads {FORMAT_VERSION}"
        )
    for key in TOP_LEVEL_KEYS:
        if key not in data and key != "exported_at":
            raise _fail(key, "missing field")
    exported_at = data.get("exported_at")
    if exported_at is not None and not isinstance(exported_at, str):
        raise _fail("exported_at", "must be a string or null")


def _check_images(raw: Any) -> dict[str, Image]:
    if not isinstance(raw, dict):
        raise _fail("images", f"must be an object keyed by checksum, got {_type_name(raw)}")
    images: dict[str, Image] = {}
    for checksum, entry in raw.items():
        path = f"images[{checksum!r}]"
        if not CHECKSUM_RE.match(checksum):
            raise _fail(path, "key must be a lowercase hex SHA-256 checksum")
        _check_object(entry, IMAGE_FIELDS, path)
        if not entry["content_type"].startswith("image/"):
            raise _fail(f"{path}.content_type", f"{entry['content_type']!r} is not an image type")
        if len(entry["data"]) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise _fail(f"{path}.data", f"image is larger than {MAX_IMAGE_BYTES} bytes")
        try:
            content = base64.b64decode(entry["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _fail(f"{path}.data", f"is not valid base64 ({exc})") from None
        if not content:
            raise _fail(f"{path}.data", "image is empty")
        if len(content) != entry["byte_size"]:
            raise _fail(
                f"{path}.byte_size", f"says {entry['byte_size']} but the data has {len(content)}"
            )
        actual = hashlib.sha256(content).hexdigest()
        if actual != checksum:
            raise _fail(path, f"checksum mismatch: the data hashes to {actual}")
        images[checksum] = Image(entry["content_type"], content)
    return images


def _check_attachments(
    attachments: list[Any], path: str, images: dict[str, Image], used: set[str]
) -> None:
    for i, attachment in enumerate(attachments):
        apath = f"{path}[{i}]"
        _check_object(attachment, ATTACHMENT_FIELDS, apath)
        if UNSAFE_FILENAME_RE.search(attachment["filename"]):
            raise _fail(f"{apath}.filename", "must not contain slashes or control characters")
        if attachment["image"] not in images:
            raise _fail(f"{apath}.image", f"no image with checksum {attachment['image']!r}")
        used.add(attachment["image"])


def _prerequisite_order(schticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children; raises on a cycle (which the database would happily store)."""
    by_ref = {s["ref"]: s for s in schticks}
    state: dict[str, int] = {}  # 1 = on the current chain, 2 = placed
    ordered: list[dict[str, Any]] = []
    for index, start in enumerate(schticks):
        chain: list[str] = []
        ref: str | None = start["ref"]
        while ref is not None and state.get(ref) is None:
            state[ref] = 1
            chain.append(ref)
            ref = by_ref[ref]["prerequisite"]
        if ref is not None and state.get(ref) == 1:
            cycle = [*chain[chain.index(ref) :], ref]
            raise _fail(
                _record_path("schticks", index, start) + ".prerequisite",
                "prerequisite cycle: " + " -> ".join(cycle),
            )
        for placed in reversed(chain):
            state[placed] = 2
            ordered.append(by_ref[placed])
    return ordered


def validate_template(data: Any) -> ValidTemplate:
    """Check a parsed template document; raise TemplateError naming the first problem."""
    _check_header(data)
    images = _check_images(data["images"])
    used_images: set[str] = set()

    _check_object(data["campaign"], CAMPAIGN_FIELDS, "campaign")
    _check_attachments(data["campaign"]["attachments"], "campaign.attachments", images, used_images)

    section_of: dict[str, str] = {CAMPAIGN_REF: "campaign"}
    for section, fields in SECTIONS.items():
        records = data[section]
        if not isinstance(records, list):
            raise _fail(section, f"must be an array, got {_type_name(records)}")
        seen_keys: dict[tuple[str, ...], str] = {}
        for i, record in enumerate(records):
            path = _record_path(section, i, record)
            _check_object(record, fields, path, extra=("ref",))
            _check_value(record["ref"], Field("ref", max_length=MAX_REF_LENGTH), f"{path}.ref")
            ref = record["ref"]
            if ref in section_of:
                raise _fail(f"{path}.ref", f"duplicate ref (already used in {section_of[ref]})")
            section_of[ref] = section
            key = tuple(record[k] or "" for k in NATURAL_KEYS[section])
            if key in seen_keys:
                label = " / ".join(NATURAL_KEYS[section])
                raise _fail(path, f"duplicate {label} {key!r} (also ref {seen_keys[key]!r})")
            seen_keys[key] = ref
            _check_attachments(record["attachments"], f"{path}.attachments", images, used_images)

    for section, fields in SECTIONS.items():
        for i, record in enumerate(data[section]):
            path = _record_path(section, i, record)
            for name, spec in fields.items():
                if spec.kind == "ref" and record[name] is not None:
                    if section_of.get(record[name]) != spec.target:
                        raise _fail(
                            f"{path}.{name}",
                            f"points to no record in {spec.target}: {record[name]!r}",
                        )
                elif spec.kind == "refs":
                    seen: set[str] = set()
                    for j, ref in enumerate(record[name]):
                        _check_value(ref, Field("ref"), f"{path}.{name}[{j}]")
                        if section_of.get(ref) != spec.target:
                            raise _fail(
                                f"{path}.{name}[{j}]",
                                f"points to no record in {spec.target}: {ref!r}",
                            )
                        if ref in seen:
                            raise _fail(f"{path}.{name}[{j}]", f"duplicate link to {ref!r}")
                        seen.add(ref)

    positions = data["image_positions"]
    if not isinstance(positions, list):
        raise _fail("image_positions", f"must be an array, got {_type_name(positions)}")
    for i, position in enumerate(positions):
        path = f"image_positions[{i}]"
        _check_object(position, POSITION_FIELDS, path)
        if position["record"] not in section_of:
            raise _fail(f"{path}.record", f"points to no record: {position['record']!r}")

    unused = sorted(set(images) - used_images)
    if unused:
        raise _fail(f"images[{unused[0]!r}]", "is not used by any attachment")

    sections = {name: list(data[name]) for name in SECTIONS}
    sections["schticks"] = _prerequisite_order(sections["schticks"])
    return ValidTemplate(
        campaign=data["campaign"],
        sections=sections,
        positions=list(positions),
        images=images,
        section_of=section_of,
    )
