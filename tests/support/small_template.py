"""A small master template with every shape the full one has, for fast seeding/verify tests.

It has what makes copying hard: a schtick name repeated across categories (and a prerequisite
on the repeated name, so linking by name would pick the wrong one), a three-long prerequisite
chain, junctures and characters linked to factions, character schticks and carries, a vehicle
(the full template has none), image positions on several record types and the campaign, and
one image attachment per record, two of them on the same blob.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
    RECORD_TYPES,
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    Faction,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    Juncture,
    Schtick,
    User,
    Vehicle,
    Weapon,
)
from portal.services.images.blobs import store_blob
from portal.services.images.store import ImageStore

PICTURES = (b"\x89PNG-small-template-picture-one", b"\x89PNG-small-template-picture-two")


def make_user(session: Session, label: str = "gm") -> User:
    user = User(id=uuid.uuid4(), email=f"{label}-{uuid.uuid4().hex[:8]}@example.com", name=label)
    session.add(user)
    session.flush()
    return user


def build_small_template(session: Session, store: ImageStore) -> Campaign:
    """Create and commit the small master template; return its campaign."""
    owner = make_user(session, "template-owner")
    campaign = Campaign(
        id=uuid.uuid4(),
        user_id=owner.id,
        name="Master Template",
        description="<p>The small template</p>",
        is_master_template=True,
        template_version=1,
    )
    session.add(campaign)
    session.flush()
    cid = campaign.id

    def add(obj: Any) -> Any:
        session.add(obj)
        session.flush()
        return obj

    dragons = add(Faction(campaign_id=cid, name="The Dragons", description="<p>Héroes</p>"))
    ascended = add(Faction(campaign_id=cid, name="The Ascended", active=False))
    contemporary = add(Juncture(campaign_id=cid, name="Contemporary", faction_id=dragons.id))
    ancient = add(Juncture(campaign_id=cid, name="Ancient", description="69 AD"))

    def schtick(category: str, name: str, prerequisite: Schtick | None = None, **kw: Any):
        return add(
            Schtick(
                campaign_id=cid,
                category=category,
                name=name,
                description=f"<p>{name} — “{category}”</p>",
                prerequisite_id=prerequisite.id if prerequisite else None,
                **kw,
            )
        )

    guns_reload = schtick("Guns", "Lightning Reload", path="Core", color="#aa0000")
    blazing = schtick("Guns", "Both Guns Blazing", guns_reload, archetypes=["Killer", "Cop"])
    schtick("Guns", "Carnival of Carnage", blazing, bonus=True)
    fu_reload = schtick("Fu", "Lightning Reload", path="Path of the Fist")
    schtick("Fu", "Eagle Eye", fu_reload, archetypes=["Old Master"])
    schtick("Sorcery", "Blast", archetypes=[], color="#0000aa", active=False)

    beretta = add(Weapon(campaign_id=cid, name="Beretta 92FS", damage=10, concealment=2))
    sword = add(Weapon(campaign_id=cid, name="Sword", damage=10, juncture="Ancient"))
    shotgun = add(Weapon(campaign_id=cid, name="Shotgun", damage=13, kachunk=True, mook_bonus=1))

    johnny = add(
        Character(
            campaign_id=cid,
            user_id=owner.id,
            faction_id=dragons.id,
            juncture_id=contemporary.id,
            name="Johnny Tso",
            action_values={"Guns": 15, "Type": "PC", "Defense": 14},
            description={"Age": "30", "Background": "Un flic à Hong Kong"},
            skills={"Driving": 12},
            is_template=True,
            color="#123456",
            summary="Cop",
        )
    )
    shing = add(
        Character(
            campaign_id=cid,
            user_id=owner.id,
            juncture_id=ancient.id,
            name="Ugly Shing",
            action_values={"Type": "Boss", "Martial Arts": 16},
            is_template=True,
        )
    )
    for character, schticks in ((johnny, (guns_reload, blazing)), (shing, (fu_reload,))):
        for linked in schticks:
            session.add(CharacterSchtick(character_id=character.id, schtick_id=linked.id))
    for character, weapons in ((johnny, (beretta, shotgun)), (shing, (sword,))):
        for linked in weapons:
            session.add(Carry(character_id=character.id, weapon_id=linked.id))
    taxi = add(
        Vehicle(
            campaign_id=cid,
            user_id=owner.id,
            faction_id=ascended.id,
            juncture_id=contemporary.id,
            name="Taxi",
            action_values={"Acceleration": 7},
        )
    )

    for type_name, record_id, context, x, y, overrides in (
        ("Campaign", cid, "card", 0.0, 0.0, None),
        ("Schtick", fu_reload.id, "card", 10.5, -3.25, {"zoom": 1.2}),
        ("Character", johnny.id, "sheet", 50.0, 12.0, {"filter": "sepia"}),
        ("Vehicle", taxi.id, "card", 1.0, 2.0, None),
    ):
        session.add(
            ImagePosition(
                positionable_type=type_name,
                positionable_id=record_id,
                context=context,
                x_position=x,
                y_position=y,
                style_overrides=overrides,
            )
        )
    session.flush()

    # One attachment per record on its own blob (as the full template has), except that the
    # sword shares the beretta's blob.
    records: list[Any] = [campaign]
    for model in (Faction, Juncture, Schtick, Weapon, Character, Vehicle):
        records.extend(
            session.scalars(sa.select(model).where(model.campaign_id == cid).order_by(model.name))
        )
    shared_blob: ImageBlob | None = None
    for index, record in enumerate(records):
        if record is sword and shared_blob is not None:
            blob = shared_blob
        else:
            blob = store_blob(
                session,
                store,
                PICTURES[index % 2],
                filename=f"picture-{index % 2}.png",
                content_type="image/png",
            )
        if record is beretta:
            shared_blob = blob
        session.add(
            ImageAttachment(
                name="image",
                record_type=type(record).__name__,
                record_id=record.id,
                blob_id=blob.id,
            )
        )
    session.commit()
    return campaign


# What `content_counts` gives for the generated master template (docs/template-format.md).
FULL_SHAPE = {
    "factions": 12,
    "junctures": 7,
    "schticks": 643,
    "weapons": 86,
    "characters": 40,
    "vehicles": 0,
    "character_schticks": 157,
    "carries": 42,
    "image_positions": 60,
    "image_attachments": 789,
}


def content_counts(session: Session, campaign_id: uuid.UUID) -> dict[str, int]:
    """Rows a campaign holds, table by table (links and images through their owners)."""
    counts: dict[str, int] = {}
    for model in (Faction, Juncture, Schtick, Weapon, Character, Vehicle):
        counts[model.__tablename__] = session.scalar(
            sa.select(sa.func.count()).where(model.campaign_id == campaign_id)
        )
    characters = sa.select(Character.id).where(Character.campaign_id == campaign_id)
    for link in (CharacterSchtick, Carry):
        counts[link.__tablename__] = session.scalar(
            sa.select(sa.func.count()).where(link.character_id.in_(characters))
        )
    positions = attachments = 0
    for type_name, model in RECORD_TYPES.items():
        if type_name == "Campaign":
            owned: Any = sa.literal(campaign_id, sa.Uuid())
            ids: Any = sa.select(owned)
        else:
            ids = sa.select(model.id).where(model.campaign_id == campaign_id)
        positions += session.scalar(
            sa.select(sa.func.count()).where(
                ImagePosition.positionable_type == type_name,
                ImagePosition.positionable_id.in_(ids),
            )
        )
        attachments += session.scalar(
            sa.select(sa.func.count()).where(
                ImageAttachment.record_type == type_name, ImageAttachment.record_id.in_(ids)
            )
        )
    counts["image_positions"] = positions
    counts["image_attachments"] = attachments
    return counts
