"""Campaign rows themselves: creating the empty shell a seeder fills, and lookups."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
    Campaign,
    Character,
    ContentRow,
    Faction,
    ImageAttachment,
    Juncture,
    Schtick,
    User,
    Vehicle,
    Weapon,
    utcnow,
)

# The content a campaign carries, by the name its count goes under.
CONTENT_TABLES: dict[str, type[ContentRow]] = {
    "schticks": Schtick,
    "weapons": Weapon,
    "factions": Faction,
    "junctures": Juncture,
    "characters": Character,
    "vehicles": Vehicle,
}


class CampaignError(ValueError):
    """A campaign cannot be created as asked; the message says why, for the user."""


def find_master_template(session: Session) -> Campaign | None:
    """The master template campaign, if one has been generated or imported."""
    return session.scalars(
        sa.select(Campaign).where(Campaign.is_master_template.is_(True)).limit(1)
    ).first()


def name_taken(session: Session, owner_id: uuid.UUID, name: str) -> bool:
    stmt = sa.select(Campaign.id).where(Campaign.user_id == owner_id, Campaign.name == name)
    return session.scalar(stmt.limit(1)) is not None


def create_campaign_shell(
    session: Session, owner: User, name: str, description: str | None = None, **columns: object
) -> Campaign:
    """An empty campaign row (flushed, not committed) for a seeder to fill."""
    if name_taken(session, owner.id, name):
        raise CampaignError(f"{owner.email} already has a campaign named {name!r}")
    now = utcnow()
    campaign = Campaign(
        id=uuid.uuid4(),
        user_id=owner.id,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
        **columns,
    )
    session.add(campaign)
    session.flush()
    return campaign


def content_count_columns(
    campaign_id: uuid.UUID | sa.ColumnElement[uuid.UUID], *, with_images: bool = False
) -> list[sa.Label[int]]:
    """One labelled scalar subquery per content table counting the campaign's rows (and with
    `with_images` the images attached to the campaign itself): select them on their own, or
    add them to another statement, such as the pool claim, to save a round trip."""

    def count(
        model: type[ContentRow | ImageAttachment], *where: sa.ColumnElement[bool]
    ) -> sa.ScalarSelect[int]:
        return sa.select(sa.func.count()).select_from(model).where(*where).scalar_subquery()

    columns = [
        count(model, model.campaign_id == campaign_id).label(name)
        for name, model in CONTENT_TABLES.items()
    ]
    if with_images:
        own_images = count(
            ImageAttachment,
            ImageAttachment.record_type == "Campaign",
            ImageAttachment.record_id == campaign_id,
        )
        columns.append(own_images.label("images"))
    return columns


def content_counts(
    session: Session, campaign_id: uuid.UUID, *, with_images: bool = False
) -> dict[str, int]:
    """How much content a campaign holds, in one round trip (one scalar subquery per table);
    `with_images` adds the images attached to the campaign itself."""
    columns = content_count_columns(campaign_id, with_images=with_images)
    return dict(session.execute(sa.select(*columns)).one()._mapping)
