"""Export and import of the master template as a JSON document (docs/template-format.md).

Operators bring their own template, so the format must round-trip exactly: records are named by
refs derived from their natural keys (never database ids), lists are sorted by those keys, JSON
objects have sorted keys (PostgreSQL's JSONB does not keep key order, SQLite does), and images
are stored once per distinct checksum. Export, import into an empty database, export again:
the two documents are identical apart from `exported_at`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
    Campaign,
    Carry,
    Character,
    CharacterLink,
    CharacterSchtick,
    ContentRow,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    utcnow,
)
from portal.services.campaigns.records import find_master_template
from portal.services.images.store import ImageStore, ImageStoreError
from portal.services.template.document import (
    CAMPAIGN_REF,
    FORMAT_NAME,
    FORMAT_VERSION,
    NATURAL_KEYS,
    RECORD_TYPE_OF,
    REF_PREFIX,
    SECTIONS,
)
from portal.services.template.errors import TemplateError
from portal.services.template.scope import attachments_of, positions_of
from portal.services.template.validation import validate_template
from portal.services.template.writer import SECTION_MODELS, write_template


def canonical(value: Any) -> Any:
    """`value` with every object's keys sorted, recursively, so output never depends on the
    database's JSON storage order."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


RowT = TypeVar("RowT", bound=ContentRow)


def _campaign_rows(session: Session, model: type[RowT], campaign_id: uuid.UUID) -> Sequence[RowT]:
    """The campaign's rows of one content table, typed as that table's model."""
    return session.scalars(sa.select(model).where(model.campaign_id == campaign_id)).all()


def _natural_key(section: str, row: Any) -> tuple[str, ...]:
    return tuple(getattr(row, name) or "" for name in NATURAL_KEYS[section])


class _Exporter:
    def __init__(self, session: Session, store: ImageStore, master: Campaign) -> None:
        self.session = session
        self.store = store
        self.master = master
        self.refs: dict[tuple[str, uuid.UUID], str] = {("Campaign", master.id): CAMPAIGN_REF}
        self.rows: dict[str, list[Any]] = {}
        self.attachments: dict[tuple[str, uuid.UUID], list[dict[str, Any]]] = defaultdict(list)
        self.blobs_by_checksum: dict[str, list[ImageBlob]] = defaultdict(list)

    def load(self) -> None:
        for section, model in SECTION_MODELS.items():
            rows = sorted(
                _campaign_rows(self.session, model, self.master.id),
                key=functools.partial(_natural_key, section),
            )
            for a, b in itertools.pairwise(rows):
                if _natural_key(section, a) == _natural_key(section, b):
                    label = " / ".join(NATURAL_KEYS[section])
                    raise TemplateError(
                        f"{section}: two records share the {label} {_natural_key(section, a)!r}; "
                        "the template format needs them unique"
                    )
            self.rows[section] = rows
            for n, row in enumerate(rows, start=1):
                self.refs[(RECORD_TYPE_OF[section], row.id)] = f"{REF_PREFIX[section]}-{n:04d}"
        pairs = self.session.execute(
            sa.select(ImageAttachment, ImageBlob)
            .join(ImageBlob, ImageBlob.id == ImageAttachment.blob_id)
            .where(attachments_of(self.master.id))
        ).all()
        for attachment, blob in pairs:
            self.attachments[(attachment.record_type, attachment.record_id)].append(
                {"name": attachment.name, "filename": blob.filename, "image": blob.checksum}
            )
            self.blobs_by_checksum[blob.checksum].append(blob)

    @overload
    def ref(self, record_type: str, record_id: uuid.UUID, path: str) -> str: ...
    @overload
    def ref(self, record_type: str, record_id: None, path: str) -> None: ...
    def ref(self, record_type: str, record_id: uuid.UUID | None, path: str) -> str | None:
        if record_id is None:
            return None
        try:
            return self.refs[(record_type, record_id)]
        except KeyError:
            raise TemplateError(f"{path}: points outside the template ({record_id})") from None

    def record_attachments(self, record_type: str, record_id: uuid.UUID) -> list[dict[str, Any]]:
        found = self.attachments.get((record_type, record_id), [])
        return sorted(found, key=lambda a: (a["name"], a["filename"], a["image"]))

    def links(
        self, model: type[CharacterLink], column: str, target_type: str
    ) -> dict[uuid.UUID, list[str]]:
        character_ids = sa.select(Character.id).where(Character.campaign_id == self.master.id)
        out: dict[uuid.UUID, list[str]] = defaultdict(list)
        rows = self.session.execute(
            sa.select(model.character_id, getattr(model, column)).where(
                model.character_id.in_(character_ids)
            )
        ).all()
        for character_id, target_id in rows:
            out[character_id].append(self.ref(target_type, target_id, f"{model.__tablename__}"))
        return out

    def section(self, section: str) -> list[dict[str, Any]]:
        record_type = RECORD_TYPE_OF[section]
        links = {}
        if section == "characters":
            links = {
                "schticks": self.links(CharacterSchtick, "schtick_id", "Schtick"),
                "weapons": self.links(Carry, "weapon_id", "Weapon"),
            }
        records = []
        for row in self.rows[section]:
            ref = self.refs[(record_type, row.id)]
            record: dict[str, Any] = {"ref": ref}
            for name, spec in SECTIONS[section].items():
                if spec.kind == "attachments":
                    record[name] = self.record_attachments(record_type, row.id)
                elif spec.kind == "refs":
                    record[name] = sorted(links[name].get(row.id, []))
                elif spec.kind == "ref":
                    target = RECORD_TYPE_OF[spec.target_section]
                    value = getattr(row, spec.column or name)
                    record[name] = self.ref(target, value, f"{section}.{ref}.{name}")
                else:
                    record[name] = canonical(getattr(row, spec.column or name))
            records.append(record)
        return records

    def positions(self) -> list[dict[str, Any]]:
        rows = self.session.scalars(
            sa.select(ImagePosition).where(positions_of(self.master.id))
        ).all()
        positions = [
            {
                "record": self.ref(p.positionable_type, p.positionable_id, "image_positions"),
                "context": p.context,
                "x_position": p.x_position,
                "y_position": p.y_position,
                "style_overrides": canonical(p.style_overrides),
            }
            for p in rows
        ]

        def key(p: dict[str, Any]) -> tuple[Any, ...]:
            style = json.dumps(p["style_overrides"], sort_keys=True)
            return (p["record"], p["context"], p["x_position"], p["y_position"], style)

        return sorted(positions, key=key)

    def images(self) -> dict[str, dict[str, Any]]:
        """One entry per distinct checksum, its bytes fetched from the store and verified."""
        images: dict[str, dict[str, Any]] = {}
        for checksum in sorted(self.blobs_by_checksum):
            blobs = sorted(self.blobs_by_checksum[checksum], key=lambda b: b.key)
            content = None
            for blob in blobs:
                try:
                    candidate = self.store.fetch(blob.meta or {})
                except ImageStoreError:
                    continue
                if hashlib.sha256(candidate).hexdigest() == checksum:
                    content = candidate
                    break
            if content is None:
                raise TemplateError(
                    f"image {checksum}: no stored file with this checksum could be read "
                    f"(blob keys: {', '.join(b.key for b in blobs[:3])})"
                )
            images[checksum] = {
                "content_type": min(b.content_type for b in blobs),
                "byte_size": len(content),
                "data": base64.b64encode(content).decode("ascii"),
            }
        return images


def export_template(session: Session, store: ImageStore | None = None) -> dict[str, Any]:
    """The master template as a format-version-1 document; TemplateError if there is none.

    `store` defaults to the application's image store (the image bytes are read from it)."""
    if store is None:
        from portal.services.images.backend import get_image_store

        store = get_image_store()
    master = find_master_template(session)
    if master is None:
        raise TemplateError("there is no master template to export")
    exporter = _Exporter(session, store, master)
    exporter.load()
    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "campaign": {
            "name": master.name,
            "description": master.description,
            "attachments": exporter.record_attachments("Campaign", master.id),
        },
    }
    for section in SECTIONS:
        document[section] = exporter.section(section)
    document["image_positions"] = exporter.positions()
    document["images"] = exporter.images()
    return document


def dump_template(document: dict[str, Any]) -> str:
    """The document as the text `template export` writes (UTF-8, readable, stable)."""
    return json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys without a word; a template with a duplicate
    key is ambiguous, so refuse it."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            context = ", ".join(repr(k) for k, _ in pairs[:4])
            raise TemplateError(f"duplicate key {key!r} in a JSON object (keys: {context} ...)")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise TemplateError(f"{name} is not valid JSON")


def parse_template(text: str | bytes, source: str = "template") -> dict[str, Any]:
    """Parse template JSON text; TemplateError for bad encoding, bad JSON or duplicate keys."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TemplateError(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except TemplateError as exc:
        raise TemplateError(f"{source}: {exc}") from None
    except RecursionError:
        raise TemplateError(f"{source}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: a template must be a JSON object")
    return data


def load_template_file(path: str | Path) -> dict[str, Any]:
    """Read and parse a template file; TemplateError (naming the file) when it cannot be."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_template(raw, str(path))


def import_template(
    session: Session, store: ImageStore, data: dict[str, Any], *, replace: bool = False
) -> Campaign:
    """Validate `data` completely, then write it as the master template in one transaction
    (commits). With `replace`, an existing master is demoted (kept, inactive, renamed) and the
    new one gets its version + 1; without it, an existing master is an error. On any error
    nothing is written and no image file is left behind."""
    template = validate_template(data)
    return write_template(session, store, template, replace=replace, operation="import")
