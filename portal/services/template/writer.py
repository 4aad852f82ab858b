"""Writing a validated template into the database and the image store, all or nothing.

Both `generate_template` and `import_template` end here, so a generated template and an imported
one have exactly the same shape. The unit of work is owned here: image files are stored first
(one file per attachment, as the original system had), then every row is inserted with one
executemany per table, then one commit. If anything fails, the transaction is rolled back and
the files stored so far are deleted, so a failed run leaves neither rows nor files behind.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    ContentRow,
    Faction,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    Juncture,
    Schtick,
    User,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.services.campaigns.records import find_master_template
from portal.services.images.store import ImageStore, checksum_of
from portal.services.pool.rollout import retire_old_versions
from portal.services.template.document import CAMPAIGN_REF, RECORD_TYPE_OF, SECTIONS
from portal.services.template.errors import TemplateError
from portal.services.template.fingerprint import template_fingerprint
from portal.services.template.validation import ValidTemplate
from portal.services.template.versions import VersionChange, record_version_change

log = logging.getLogger("portal.template")

TEMPLATE_OWNER_EMAIL = "template-owner@campaign-pool.invalid"
TEMPLATE_OWNER_NAME = "Master Template Owner"

SECTION_MODELS: dict[str, type[ContentRow]] = {
    "factions": Faction,
    "junctures": Juncture,
    "schticks": Schtick,
    "weapons": Weapon,
    "characters": Character,
    "vehicles": Vehicle,
}
# Sections whose rows carry a user_id: template characters and vehicles belong to the owner.
OWNED_SECTIONS = ("characters", "vehicles")
KEY_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def template_owner(session: Session) -> User:
    """The template-owner user, created on first use. It has no password, so it cannot log in;
    it only exists because every campaign needs an owner."""
    owner = session.scalars(
        sa.select(User).where(sa.func.lower(User.email) == TEMPLATE_OWNER_EMAIL)
    ).first()
    if owner is None:
        now = utcnow()
        owner = User(
            id=uuid.uuid4(),
            email=TEMPLATE_OWNER_EMAIL,
            name=TEMPLATE_OWNER_NAME,
            password_hash=None,
            admin=False,
            gamemaster=False,
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(owner)
        session.flush()
    return owner


def _retired_name(old: Campaign, now_tag: str) -> str:
    suffix = f" (template v{old.template_version or 1}, replaced {now_tag})"
    return old.name[: 255 - len(suffix)] + suffix


def _demote_master(session: Session, old: Campaign) -> int:
    """Keep the old master as an inactive ordinary campaign (nothing is deleted: pool campaigns
    and audits may still refer to it); return the version the new master gets."""
    version = (old.template_version or 1) + 1
    old.name = _retired_name(old, utcnow().strftime("%Y%m%dT%H%M%S.%fZ"))
    old.is_master_template = False
    old.active = False
    old.updated_at = utcnow()
    session.flush()
    return version


def _supersede_pool(session: Session, campaign: Campaign, previous: int) -> None:
    """A replacement is a new template version: retire the pool campaigns of the old ones in
    this same transaction (see portal.services.pool.rollout) and record the change."""
    now = utcnow()
    version = campaign.template_version or 1
    retired = retire_old_versions(session, version, reason="template_version", now=now)
    change = VersionChange(
        previous, version, "imported", campaign.template_fingerprint or "", len(retired)
    )
    record_version_change(session, change, now)


def _blob_key(blob_id: uuid.UUID, filename: str) -> str:
    safe = KEY_SAFE_RE.sub("-", filename).strip("-.")[:100] or "image"
    return f"templates/{blob_id.hex}-{safe}"


class _Plan:
    """The rows to insert, built in memory before any I/O so that failures happen early."""

    def __init__(self, template: ValidTemplate, campaign_id: uuid.UUID, owner_id: uuid.UUID):
        self.template = template
        self.campaign_id = campaign_id
        self.owner_id = owner_id
        self.now = utcnow()
        self.ids: dict[str, uuid.UUID] = {CAMPAIGN_REF: campaign_id}
        for records in template.sections.values():
            for record in records:
                self.ids[record["ref"]] = uuid.uuid4()
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.uploads: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (blob row, attachment)
        self._build()

    def _record_row(self, section: str, record: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.ids[record["ref"]],
            "campaign_id": self.campaign_id,
            "created_at": self.now,
            "updated_at": self.now,
        }
        if section in OWNED_SECTIONS:
            row["user_id"] = self.owner_id
        for name, spec in SECTIONS[section].items():
            if spec.kind in ("refs", "attachments"):
                continue
            value = record[name]
            if spec.kind == "ref":
                row[spec.column or name] = None if value is None else self.ids[value]
            else:
                row[spec.column or name] = value
        return row

    def _attachments(self, section: str, ref: str, attachments: list[dict[str, Any]]) -> None:
        for attachment in attachments:
            image = self.template.images[attachment["image"]]
            blob_id = uuid.uuid4()
            blob = {
                "id": blob_id,
                "key": _blob_key(blob_id, attachment["filename"]),
                "filename": attachment["filename"],
                "content_type": image.content_type,
                "byte_size": len(image.content),
                "checksum": checksum_of(image.content),
                "created_at": self.now,
            }
            row = {
                "id": uuid.uuid4(),
                "name": attachment["name"],
                "record_type": RECORD_TYPE_OF[section],
                "record_id": self.ids[ref],
                "blob_id": blob_id,
                "created_at": self.now,
            }
            self.uploads.append((blob, {"ref": ref, "image": image, "attachment": row}))

    def _build(self) -> None:
        t = self.template
        self._attachments("campaign", CAMPAIGN_REF, t.campaign["attachments"])
        for section, records in t.sections.items():
            self.rows[section] = [self._record_row(section, r) for r in records]
            for record in records:
                self._attachments(section, record["ref"], record["attachments"])
        self.rows["character_schticks"] = [
            {"character_id": self.ids[c["ref"]], "schtick_id": self.ids[s]}
            for c in t.sections["characters"]
            for s in c["schticks"]
        ]
        self.rows["carries"] = [
            {"character_id": self.ids[c["ref"]], "weapon_id": self.ids[w]}
            for c in t.sections["characters"]
            for w in c["weapons"]
        ]
        self.rows["image_positions"] = [
            {
                "id": uuid.uuid4(),
                "positionable_type": RECORD_TYPE_OF[t.section_of[p["record"]]],
                "positionable_id": self.ids[p["record"]],
                "context": p["context"],
                "x_position": float(p["x_position"]),
                "y_position": float(p["y_position"]),
                "style_overrides": p["style_overrides"],
                "created_at": self.now,
                "updated_at": self.now,
            }
            for p in t.positions
        ]


def _store_files(store: ImageStore, plan: _Plan, stored: list[dict[str, Any]]) -> None:
    """Put one file per blob; every stored file's metadata is appended to `stored` at once, so
    the caller can delete exactly what was stored if a later step fails."""
    for blob, info in plan.uploads:
        meta = store.put(
            blob["key"],
            blob["filename"],
            info["image"].content,
            blob["content_type"],
            context={"operation": "template", "record": info["ref"], "blob_id": str(blob["id"])},
        )
        stored.append(meta)
        blob["meta"] = meta
        blob["service_name"] = store.service_name


def _insert_rows(session: Session, plan: _Plan) -> None:
    inserts: list[tuple[type, list[dict[str, Any]]]] = [
        *((SECTION_MODELS[s], plan.rows[s]) for s in SECTIONS),
        (CharacterSchtick, plan.rows["character_schticks"]),
        (Carry, plan.rows["carries"]),
        (ImagePosition, plan.rows["image_positions"]),
        (ImageBlob, [blob for blob, _ in plan.uploads]),
        (ImageAttachment, [info["attachment"] for _, info in plan.uploads]),
    ]
    for model, rows in inserts:
        if rows:
            session.execute(sa.insert(model), rows)


def _delete_files(store: ImageStore, stored: list[dict[str, Any]]) -> None:
    for meta in stored:
        try:
            store.delete(meta, context={"operation": "template.cleanup"})
        except Exception:  # keep cleaning; one stuck file must not strand the others
            log.exception("template.cleanup_failed", extra={"file_id": meta.get("fileId")})


def write_template(
    session: Session,
    store: ImageStore,
    template: ValidTemplate,
    *,
    replace: bool = False,
    operation: str = "import",
) -> Campaign:
    """Create the master template campaign from `template`, store its images, commit.

    Raises TemplateError (nothing written) when a master template exists and `replace` is
    false, or when the template owner already has a campaign with the template's name."""
    started = time.perf_counter()
    stored: list[dict[str, Any]] = []
    try:
        owner = template_owner(session)
        # Serialize template writers on the owner row (PostgreSQL; SQLite serializes writes
        # anyway) so two concurrent imports cannot both see "no master" and create two.
        # NO KEY UPDATE, not UPDATE: a pool build inserting the owner's characters takes a
        # KEY SHARE lock on this row (the foreign key) while holding its pool campaign, which
        # a replacement then retires; FOR UPDATE would deadlock with it.
        session.execute(
            sa.select(User.id).where(User.id == owner.id).with_for_update(key_share=True)
        )
        existing = find_master_template(session)
        if existing is not None and not replace:
            raise TemplateError(
                f"a master template already exists ({existing.name!r}, version "
                f"{existing.template_version}); use replace to supersede it"
            )
        version = _demote_master(session, existing) if existing is not None else 1
        name = template.campaign["name"]
        clash = session.scalar(
            sa.select(Campaign.id).where(Campaign.user_id == owner.id, Campaign.name == name)
        )
        if clash is not None:
            raise TemplateError(
                f"campaign.name: the template owner already has a campaign {name!r}"
            )
        campaign = Campaign(
            id=uuid.uuid4(),
            user_id=owner.id,
            name=name,
            description=template.campaign["description"],
            active=True,
            is_master_template=True,
            template_version=version,
        )
        plan = _Plan(template, campaign.id, owner.id)
        campaign.created_at = campaign.updated_at = campaign.seeded_at = plan.now
        session.add(campaign)
        session.flush()
        _store_files(store, plan, stored)
        _insert_rows(session, plan)
        campaign.template_fingerprint = template_fingerprint(session, campaign.id)
        if existing is not None:
            _supersede_pool(session, campaign, version - 1)
        session.commit()
    except BaseException:
        session.rollback()
        _delete_files(store, stored)
        raise
    log.info(
        "template.written",
        extra={
            "operation": operation,
            "campaign_id": str(campaign.id),
            "template_version": version,
            "rows": {k: len(v) for k, v in plan.rows.items()}
            | {"image_blobs": len(plan.uploads), "image_attachments": len(plan.uploads)},
            "files": len(stored),
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return campaign
