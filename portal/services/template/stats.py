"""`template stats`: the counts of the production shape (docs/template-format.md) for the current
master template.

Operators and tests compare these numbers with the production shape; they are computed from the
database (not remembered from generation) so that an imported template is described as truly.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
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
    Vehicle,
    Weapon,
)
from portal.services.campaigns.records import find_master_template
from portal.services.template.errors import TemplateError
from portal.services.template.scope import attachments_of, positions_of

CHARACTER_TYPES = ("PC", "Ally", "Boss", "Featured Foe", "Mook", "Uber-Boss")


def prerequisite_depths(links: dict[uuid.UUID, uuid.UUID | None]) -> dict[uuid.UUID, int]:
    """Depth of each schtick in its prerequisite chain: 1 for a schtick without prerequisite,
    parent + 1 otherwise. A prerequisite outside `links` counts as depth 1; a cycle is cut."""
    depths: dict[uuid.UUID, int] = {}
    for start in links:
        chain: list[uuid.UUID] = []
        current: uuid.UUID | None = start
        while current is not None and current in links and current not in depths:
            if current in chain:  # cycle: stop climbing
                break
            chain.append(current)
            current = links[current]
        base = depths.get(current, 0) if current is not None else 0
        for offset, node in enumerate(reversed(chain), start=1):
            depths[node] = base + offset
    return depths


def _count(session: Session, model: type[ContentRow], campaign_id: uuid.UUID) -> int:
    return session.execute(
        sa.select(sa.func.count()).select_from(model).where(model.campaign_id == campaign_id)
    ).scalar_one()


def template_stats(session: Session) -> dict[str, Any]:
    """The master template's counts as a JSON-able dict; TemplateError if there is none."""
    master = find_master_template(session)
    if master is None:
        raise TemplateError(
            "there is no master template yet: run `template generate` or `template import PATH`"
        )
    cid = master.id
    schticks = session.execute(
        sa.select(Schtick.id, Schtick.prerequisite_id, Schtick.category, Schtick.name).where(
            Schtick.campaign_id == cid
        )
    ).all()
    links = {row.id: row.prerequisite_id for row in schticks}
    linked = [p for p in links.values() if p is not None]
    categories_by_name: dict[str, set[str | None]] = {}
    for row in schticks:
        categories_by_name.setdefault(row.name, set()).add(row.category)

    character_rows = session.execute(
        sa.select(Character.action_values, Character.is_template).where(
            Character.campaign_id == cid
        )
    ).all()
    types = Counter((row.action_values or {}).get("Type") or "unknown" for row in character_rows)
    character_ids = sa.select(Character.id).where(Character.campaign_id == cid)
    attachment_rows = session.execute(
        sa.select(ImageAttachment.record_type, ImageAttachment.blob_id, ImageBlob.checksum)
        .join(ImageBlob, ImageBlob.id == ImageAttachment.blob_id)
        .where(attachments_of(cid))
    ).all()
    junctures_linked = session.scalar(
        sa.select(sa.func.count())
        .select_from(Juncture)
        .where(Juncture.campaign_id == cid, Juncture.faction_id.is_not(None))
    )
    depths = prerequisite_depths(links)
    return {
        "campaign_id": str(cid),
        "campaign_name": master.name,
        "template_version": master.template_version,
        "seeded_at": master.seeded_at.isoformat() if master.seeded_at else None,
        "schticks": len(schticks),
        "schtick_categories": len({row.category for row in schticks}),
        "prerequisite_links": len(linked),
        "prerequisite_links_outside_template": sum(1 for p in linked if p not in links),
        "max_prerequisite_depth": max(depths.values(), default=0),
        "repeated_schtick_names": sum(1 for c in categories_by_name.values() if len(c) > 1),
        "weapons": _count(session, Weapon, cid),
        "factions": _count(session, Faction, cid),
        "junctures": _count(session, Juncture, cid),
        "junctures_linked_to_factions": junctures_linked,
        "characters": len(character_rows),
        "template_characters": sum(1 for row in character_rows if row.is_template),
        "character_types": {t: types.get(t, 0) for t in CHARACTER_TYPES}
        | {t: n for t, n in sorted(types.items()) if t not in CHARACTER_TYPES},
        "character_schticks": session.scalar(
            sa.select(sa.func.count())
            .select_from(CharacterSchtick)
            .where(CharacterSchtick.character_id.in_(character_ids))
        ),
        "carries": session.scalar(
            sa.select(sa.func.count())
            .select_from(Carry)
            .where(Carry.character_id.in_(character_ids))
        ),
        "vehicles": _count(session, Vehicle, cid),
        "image_positions": session.scalar(
            sa.select(sa.func.count()).select_from(ImagePosition).where(positions_of(cid))
        ),
        "image_attachments": len(attachment_rows),
        "image_attachments_by_type": dict(
            sorted(Counter(r.record_type for r in attachment_rows).items())
        ),
        "image_blobs": len({row.blob_id for row in attachment_rows}),
        "distinct_images": len({row.checksum for row in attachment_rows}),
    }
