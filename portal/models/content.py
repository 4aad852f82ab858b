"""The content a campaign carries: schticks, weapons, factions, junctures, characters, vehicles,
their links, and image positions. Every row belongs to exactly one campaign (by campaign_id or
through its parent), which is what lets a campaign be cloned or deleted as a set.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, TimestampMixin, uuid_pk


def campaign_fk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)


class Schtick(TimestampMixin, Base):
    __tablename__ = "schticks"
    # Names repeat across categories, so uniqueness is per category.
    __table_args__ = (sa.UniqueConstraint("campaign_id", "category", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    category: Mapped[str | None] = mapped_column(sa.String(100))
    path: Mapped[str | None] = mapped_column(sa.String(100))
    color: Mapped[str | None] = mapped_column(sa.String(32))
    bonus: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    archetypes: Mapped[list[Any] | None]
    prerequisite_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("schticks.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class Weapon(TimestampMixin, Base):
    __tablename__ = "weapons"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    damage: Mapped[int | None]
    concealment: Mapped[int | None]
    reload_value: Mapped[int | None]
    juncture: Mapped[str | None] = mapped_column(sa.String(100))
    mook_bonus: Mapped[int] = mapped_column(default=0, server_default="0")
    category: Mapped[str | None] = mapped_column(sa.String(100))
    kachunk: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class Faction(TimestampMixin, Base):
    __tablename__ = "factions"

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class Juncture(TimestampMixin, Base):
    __tablename__ = "junctures"

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    faction_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("factions.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class Character(TimestampMixin, Base):
    __tablename__ = "characters"

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    faction_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("factions.id", ondelete="SET NULL"), index=True
    )
    juncture_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("junctures.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    action_values: Mapped[dict[str, Any] | None]
    description: Mapped[dict[str, Any] | None]
    skills: Mapped[dict[str, Any] | None]
    is_template: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    color: Mapped[str | None] = mapped_column(sa.String(32))
    summary: Mapped[str | None] = mapped_column(sa.Text)


class Vehicle(TimestampMixin, Base):
    __tablename__ = "vehicles"

    id: Mapped[uuid.UUID] = uuid_pk()
    campaign_id: Mapped[uuid.UUID] = campaign_fk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    faction_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("factions.id", ondelete="SET NULL"), index=True
    )
    juncture_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("junctures.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    action_values: Mapped[dict[str, Any] | None]
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())


class CharacterSchtick(Base):
    __tablename__ = "character_schticks"

    character_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    schtick_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("schticks.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Carry(Base):
    __tablename__ = "carries"

    character_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    weapon_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("weapons.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ImagePosition(TimestampMixin, Base):
    """Where an image sits on a record's card, per context (polymorphic like the original)."""

    __tablename__ = "image_positions"
    __table_args__ = (sa.Index(None, "positionable_type", "positionable_id", "context"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    positionable_type: Mapped[str] = mapped_column(sa.String(50))
    positionable_id: Mapped[uuid.UUID]
    context: Mapped[str] = mapped_column(sa.String(50))
    x_position: Mapped[float] = mapped_column(default=0.0, server_default="0")
    y_position: Mapped[float] = mapped_column(default=0.0, server_default="0")
    style_overrides: Mapped[dict[str, Any] | None]


# A row of any content table. Code that treats the content tables alike (counting, copying,
# exporting, deleting a campaign's rows) types its model as `type[ContentRow]`: every member
# has `id`, `campaign_id` and the timestamps, so a type checker follows those columns through.
ContentRow: TypeAlias = Schtick | Weapon | Faction | Juncture | Character | Vehicle
# The link tables between a character and its schticks or weapons.
CharacterLink: TypeAlias = CharacterSchtick | Carry
