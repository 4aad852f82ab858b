"""Validation of a template document, before anything is written.

Import must either load the whole template or change nothing, and a half-validated file is the
classic way to end up with stored image files and no rows (or rows pointing nowhere). So every
check runs here, on plain data: schema, types, lengths, references, duplicates, prerequisite
cycles, and (through the `ImageCatalog`) image data, checksums and raster types. Every problem
is collected, grouped by rule (`problems.Problems`), and reported at once; the result of a clean
run is a `ValidTemplate` the writer can trust.

`normalize=True` accepts what exports of the original system really contain: NULL in a boolean
column (read as false, which is what the original application did with it) and empty strings
in optional text columns such as `path` and `color` (read as null). The counts of what was
changed are in `ValidTemplate.normalized`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from portal.services.images.rasters import DEFAULT_MAX_IMAGE_BYTES
from portal.services.template.document import (
    ATTACHMENT_FIELDS,
    CAMPAIGN_FIELDS,
    CAMPAIGN_REF,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_REF_LENGTH,
    NATURAL_KEYS,
    POSITION_FIELDS,
    SECTIONS,
    TOP_LEVEL_KEYS,
    Field,
)
from portal.services.template.imagefiles import (
    ImageCatalog,
    ImageInfo,
    ImageSource,
    inline_catalog,
    short,
)
from portal.services.template.problems import Problems

MAX_TEXT_LENGTH = 200_000
INT_RANGE = (-(2**31), 2**31 - 1)
UNSAFE_FILENAME_RE = re.compile(r"[/\\\x00-\x1f\x7f]")
NORMALIZE_HINT = "; --normalize reads it as false"
BLANK_HINT = "; --normalize reads it as null"


@dataclass(frozen=True)
class TemplateImage:
    """A checked image of the template and the file name its blob gets."""

    checksum: str
    content_type: str
    byte_size: int
    filename: str


@dataclass
class ValidTemplate:
    """A document that passed every check; records keep their document field names."""

    campaign: dict[str, Any]
    sections: dict[str, list[dict[str, Any]]]  # schticks in prerequisite order (parents first)
    positions: list[dict[str, Any]]
    images: dict[str, TemplateImage]  # checksum -> image
    source: ImageSource  # where the images' bytes are read from, one at a time
    section_of: dict[str, str] = field(default_factory=dict)  # ref -> section ("campaign" too)
    normalized: dict[str, int] = field(default_factory=dict)  # "schticks.bonus: null -> false"
    filenames_unified: int = 0  # attachments whose file name differed from their image's

    def attachment_count(self) -> int:
        total = len(self.campaign["attachments"])
        return total + sum(len(r["attachments"]) for rs in self.sections.values() for r in rs)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _has_nul(value: Any) -> bool:
    """PostgreSQL cannot store NUL in text or JSONB; refuse it here rather than mid-transaction."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _Checker:
    """One validation run: the document, the image catalog and the problems found."""

    def __init__(self, problems: Problems, normalize: bool) -> None:
        self.problems = problems
        self.normalize = normalize
        self.normalized: Counter[str] = Counter()

    def add(self, rule: str, where: str | None = None, detail: str | None = None) -> None:
        self.problems.add(rule, where, detail)

    # -- values --------------------------------------------------------------------------

    def value(
        self, record: dict[str, Any], name: str, spec: Field, rule: str, where: str | None
    ) -> bool:
        """Check record[name] against `spec`; normalise it in place when asked. True if fine."""
        value = record[name]
        if value is None:
            if spec.nullable:
                return True
            if spec.kind == "boolean" and self.normalize:
                record[name] = False
                self.normalized[f"{rule.split('[')[0]}.{name}: null -> false"] += 1
                return True
            hint = NORMALIZE_HINT if spec.kind == "boolean" else ""
            self.add(f"{rule}.{name}: must not be null{hint}", where)
            return False
        kind = spec.kind
        if kind in ("string", "text", "ref"):
            if not isinstance(value, str):
                self.add(f"{rule}.{name}: must be a string", where, f"got {_type_name(value)}")
                return False
            limit = spec.max_length or (MAX_REF_LENGTH if kind == "ref" else MAX_TEXT_LENGTH)
            if len(value) > limit:
                self.add(f"{rule}.{name}: longer than {limit} characters", where, f"{len(value)}")
                return False
            if kind != "text" and not value.strip():
                if spec.nullable and kind == "string" and self.normalize:
                    record[name] = None
                    self.normalized[f"{rule.split('[')[0]}.{name}: blank -> null"] += 1
                    return True
                hint = BLANK_HINT if spec.nullable and kind == "string" else ""
                self.add(f"{rule}.{name}: must not be blank{hint}", where)
                return False
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                self.add(f"{rule}.{name}: must be an integer", where, f"got {_type_name(value)}")
                return False
            if not INT_RANGE[0] <= value <= INT_RANGE[1]:
                self.add(f"{rule}.{name}: integer out of range", where, str(value))
                return False
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.add(f"{rule}.{name}: must be a number", where, f"got {_type_name(value)}")
                return False
            if not math.isfinite(value):
                self.add(f"{rule}.{name}: must be a finite number", where)
                return False
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.add(f"{rule}.{name}: must be true or false", where, f"got {_type_name(value)}")
                return False
        elif kind in ("list", "refs", "attachments"):
            if not isinstance(value, list):
                self.add(f"{rule}.{name}: must be an array", where, f"got {_type_name(value)}")
                return False
        elif kind == "object" and not isinstance(value, dict):
            self.add(f"{rule}.{name}: must be an object", where, f"got {_type_name(value)}")
            return False
        if kind in ("string", "text", "list", "object") and _has_nul(value):
            self.add(f"{rule}.{name}: contains a NUL character", where)
            return False
        return True

    def fields(
        self,
        value: Any,
        fields: dict[str, Field],
        rule: str,
        where: str | None,
        extra: tuple[str, ...] = (),
    ) -> set[str] | None:
        """Exactly the declared keys (plus `extra`), each of its type. Returns the names of the
        fields that are usable (present and valid), or None if `value` is no object at all."""
        if not isinstance(value, dict):
            self.add(f"{rule}: must be an object", where, f"got {_type_name(value)}")
            return None
        allowed = set(fields) | set(extra)
        for key in value:
            if key not in allowed:
                self.add(f"{rule}.{key}: unknown field", where)
        good: set[str] = set()
        for name in extra:
            if name in value:
                good.add(name)
            else:
                self.add(f"{rule}.{name}: missing field", where)
        for name, spec in fields.items():
            if name not in value:
                self.add(f"{rule}.{name}: missing field", where)
            elif self.value(value, name, spec, rule, where):
                good.add(name)
        return good


def _where(record: Any, index: int, section: str) -> str:
    ref = record.get("ref") if isinstance(record, dict) else None
    if isinstance(ref, str) and ref.strip() and len(ref) <= MAX_REF_LENGTH:
        return ref
    return f"{section}[{index}]"


def _check_header(data: dict[str, Any], catalog: ImageCatalog, check: _Checker) -> None:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            check.add(f"{key}: unknown top-level field")
    if data.get("format") != FORMAT_NAME:
        check.add(f"format: must be {FORMAT_NAME!r}", None, f"got {data.get('format')!r}")
    version = data.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        check.add(f"version: unsupported version {version!r}; this build reads {FORMAT_VERSION}")
    for key in TOP_LEVEL_KEYS:
        present = catalog.present if key == "images" else key in data
        if not present and key not in ("exported_at", "format", "version"):
            check.add(f"{key}: missing field")
    exported_at = data.get("exported_at")
    if exported_at is not None and not isinstance(exported_at, str):
        check.add("exported_at: must be a string or null")


def _prerequisite_order(schticks: list[dict[str, Any]], check: _Checker) -> list[dict[str, Any]]:
    """Parents before children; a cycle (which the database would happily store) is a problem.
    Prerequisites that point nowhere were reported already and are not followed."""
    by_ref = {s["ref"]: s for s in schticks}

    def parent(ref: str) -> str | None:
        target = by_ref[ref].get("prerequisite")
        return target if isinstance(target, str) and target in by_ref else None

    state: dict[str, int] = {}  # 1 = on the current chain, 2 = placed
    ordered: list[dict[str, Any]] = []
    for start in schticks:
        chain: list[str] = []
        ref: str | None = start["ref"]
        while ref is not None and state.get(ref) is None:
            state[ref] = 1
            chain.append(ref)
            ref = parent(ref)
        if ref is not None and state.get(ref) == 1:
            cycle = [*chain[chain.index(ref) :], ref]
            check.add(
                "schticks[*].prerequisite: prerequisite cycle", start["ref"], " -> ".join(cycle)
            )
        for placed in reversed(chain):
            state[placed] = 2
            ordered.append(by_ref[placed])
    return ordered


def _file_names(
    uses: dict[str, list[str]], images: dict[str, ImageInfo]
) -> tuple[dict[str, TemplateImage], int]:
    """Each image is stored once, so it has one file name: the one most of its attachments
    give it (ties: the first in sorted order). Returns the images and how many attachments
    named their image otherwise."""
    out: dict[str, TemplateImage] = {}
    unified = 0
    for checksum, info in images.items():
        names = Counter(uses.get(checksum, []))
        if not names:
            continue
        best = max(sorted(names), key=lambda n: names[n])
        unified += sum(count for name, count in names.items() if name != best)
        out[checksum] = TemplateImage(checksum, info.content_type, info.byte_size, best)
    return out, unified


def validate_template(
    data: Any,
    *,
    images: ImageCatalog | None = None,
    normalize: bool = False,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    source: str = "template",
) -> ValidTemplate:
    """Check a parsed template document; raise TemplateProblems listing every problem.

    `images` is the catalog of already-checked images (the streamed reader and the generator
    build it); without it, `data["images"]` is an in-memory object with base64 data. With
    `normalize`, NULL booleans become false and blank optional strings null (in place)."""
    problems = Problems()
    check = _Checker(problems, normalize)
    if not isinstance(data, dict):
        problems.add("$: a template must be a JSON object", None, f"got {_type_name(data)}")
        raise problems.error(source)
    catalog = images if images is not None else inline_catalog(data.get("images"), max_image_bytes)
    _check_header(data, catalog, check)
    for rule, detail in catalog.structure:
        check.add(rule, None, detail)

    uses: dict[str, list[str]] = {}

    def attachments(record: dict[str, Any], rule: str, where: str | None) -> None:
        for attachment in record["attachments"]:
            arule = f"{rule}.attachments[*]"
            good = check.fields(attachment, ATTACHMENT_FIELDS, arule, where)
            if good is None:
                continue
            if "filename" in good and UNSAFE_FILENAME_RE.search(attachment["filename"]):
                check.add(
                    f"{arule}.filename: must not contain slashes or control characters", where
                )
                good.discard("filename")
            if "image" in good:
                image = attachment["image"]
                if image in catalog.infos or image in catalog.refused:
                    if "filename" in good:
                        uses.setdefault(image, []).append(attachment["filename"])
                else:
                    check.add(f"{arule}.image: no image with this checksum", where, short(image))

    campaign = data.get("campaign")
    good = check.fields(campaign, CAMPAIGN_FIELDS, "campaign", None) if "campaign" in data else None
    if good is not None and "attachments" in good and isinstance(campaign, dict):
        attachments(campaign, "campaign", None)

    section_of: dict[str, str] = {CAMPAIGN_REF: "campaign"}
    usable: dict[str, list[tuple[dict[str, Any], set[str], str]]] = {}
    for section, fields in SECTIONS.items():
        records = data.get(section)
        usable[section] = []
        if records is None:
            continue
        if not isinstance(records, list):
            check.add(f"{section}: must be an array", None, f"got {_type_name(records)}")
            continue
        rule = f"{section}[*]"
        seen_keys: dict[tuple[str, ...], str] = {}
        for i, record in enumerate(records):
            where = _where(record, i, section)
            good = check.fields(record, fields, rule, where, extra=("ref",))
            if good is None:
                continue
            if "ref" in good:
                ref = record["ref"]
                if check.value(record, "ref", Field("ref", max_length=MAX_REF_LENGTH), rule, where):
                    if ref in section_of:
                        check.add(
                            f"{rule}.ref: duplicate ref",
                            where,
                            f"already used in {section_of[ref]}",
                        )
                        good.discard("ref")
                    else:
                        section_of[ref] = section
                else:
                    good.discard("ref")
            key_fields = NATURAL_KEYS[section]
            if all(k in good for k in key_fields):
                key = tuple(record[k] or "" for k in key_fields)
                if key in seen_keys:
                    label = " / ".join(key_fields)
                    check.add(
                        f"{rule}: duplicate {label}", where, f"{key!r}, also {seen_keys[key]}"
                    )
                else:
                    seen_keys[key] = where
            if "attachments" in good:
                attachments(record, rule, where)
            usable[section].append((record, good, where))

    for section, fields in SECTIONS.items():
        rule = f"{section}[*]"
        for record, good, where in usable[section]:
            for name, spec in fields.items():
                if name not in good:
                    continue
                if spec.kind == "ref" and record[name] is not None:
                    if section_of.get(record[name]) != spec.target:
                        check.add(
                            f"{rule}.{name}: points to no record in {spec.target}",
                            where,
                            repr(record[name]),
                        )
                elif spec.kind == "refs":
                    seen: set[str] = set()
                    for ref in record[name]:
                        if not isinstance(ref, str):
                            check.add(f"{rule}.{name}[*]: must be a ref string", where)
                        elif section_of.get(ref) != spec.target:
                            check.add(
                                f"{rule}.{name}[*]: points to no record in {spec.target}",
                                where,
                                repr(ref),
                            )
                        elif ref in seen:
                            check.add(f"{rule}.{name}[*]: duplicate link", where, repr(ref))
                        if isinstance(ref, str):
                            seen.add(ref)

    positions = data.get("image_positions")
    if positions is not None and not isinstance(positions, list):
        check.add("image_positions: must be an array", None, f"got {_type_name(positions)}")
        positions = None
    for i, position in enumerate(positions or []):
        where = f"image_positions[{i}]"
        good = check.fields(position, POSITION_FIELDS, "image_positions[*]", where)
        if good is not None and "record" in good and position["record"] not in section_of:
            check.add(
                "image_positions[*].record: points to no record", where, repr(position["record"])
            )

    template_images, unified = _file_names(uses, catalog.infos)
    for checksum in sorted(set(catalog.infos) - set(uses)):
        check.add("images[*]: not used by any attachment", short(checksum), None)
    for rule, checksum, detail in catalog.problems:
        names = Counter(uses.get(checksum, []))
        label = short(checksum) + (f" {names.most_common(1)[0][0]!r}" if names else "")
        problems.add(rule, label, detail, noun="image")

    schticks = [r for r, good, _w in usable.get("schticks", []) if "ref" in good]
    ordered = _prerequisite_order(schticks, check) if schticks else []
    if problems:
        raise problems.error(source)

    # No problems: the campaign object was there and of the right shape (else it was reported).
    assert isinstance(campaign, dict)
    sections = {name: [r for r, _g, _w in usable[name]] for name in SECTIONS}
    sections["schticks"] = ordered
    return ValidTemplate(
        campaign=campaign,
        sections=sections,
        positions=list(positions or []),
        images=template_images,
        source=catalog.source,
        section_of=section_of,
        normalized=dict(sorted(check.normalized.items())),
        filenames_unified=unified,
    )
