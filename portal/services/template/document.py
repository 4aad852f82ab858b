"""The template exchange format (version 1): sections, fields and their column mapping.

One declarative description serves the validator (types, lengths, references), the writer
(which column a field fills) and the exporter (which fields to emit, in which order), so the three
cannot drift apart. docs/template-format.md is the human-readable version of this module.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_NAME = "campaign-pool-template"
FORMAT_VERSION = 1
CAMPAIGN_REF = "campaign"
MAX_REF_LENGTH = 100
MAX_IMAGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Field:
    """One field of a record. `kind` is one of: string, text, integer, number, boolean, list,
    object, ref (to a record of section `target`), refs (a list of those), attachments."""

    kind: str
    nullable: bool = False
    max_length: int | None = None
    target: str | None = None
    column: str | None = None  # the column a scalar or ref fills, when its name differs

    @property
    def target_section(self) -> str:
        """The section a ref field points into (every ref field declares one)."""
        if self.target is None:
            raise TypeError(f"a {self.kind!r} field declares no target section")
        return self.target


ATTACHMENTS = Field("attachments")

# Section name -> fields (besides "ref"), in export order.
SECTIONS: dict[str, dict[str, Field]] = {
    "factions": {
        "name": Field("string", max_length=255),
        "description": Field("text", nullable=True),
        "active": Field("boolean"),
        "attachments": ATTACHMENTS,
    },
    "junctures": {
        "name": Field("string", max_length=255),
        "description": Field("text", nullable=True),
        "faction": Field("ref", nullable=True, target="factions", column="faction_id"),
        "active": Field("boolean"),
        "attachments": ATTACHMENTS,
    },
    "schticks": {
        "category": Field("string", nullable=True, max_length=100),
        "name": Field("string", max_length=255),
        "description": Field("text", nullable=True),
        "path": Field("string", nullable=True, max_length=100),
        "color": Field("string", nullable=True, max_length=32),
        "bonus": Field("boolean"),
        "archetypes": Field("list", nullable=True),
        "prerequisite": Field("ref", nullable=True, target="schticks", column="prerequisite_id"),
        "active": Field("boolean"),
        "attachments": ATTACHMENTS,
    },
    "weapons": {
        "name": Field("string", max_length=255),
        "description": Field("text", nullable=True),
        "category": Field("string", nullable=True, max_length=100),
        "damage": Field("integer", nullable=True),
        "concealment": Field("integer", nullable=True),
        "reload_value": Field("integer", nullable=True),
        "juncture": Field("string", nullable=True, max_length=100),
        "mook_bonus": Field("integer"),
        "kachunk": Field("boolean"),
        "active": Field("boolean"),
        "attachments": ATTACHMENTS,
    },
    "characters": {
        "name": Field("string", max_length=255),
        "faction": Field("ref", nullable=True, target="factions", column="faction_id"),
        "juncture": Field("ref", nullable=True, target="junctures", column="juncture_id"),
        "action_values": Field("object", nullable=True),
        "description": Field("object", nullable=True),
        "skills": Field("object", nullable=True),
        "is_template": Field("boolean"),
        "active": Field("boolean"),
        "color": Field("string", nullable=True, max_length=32),
        "summary": Field("text", nullable=True),
        "schticks": Field("refs", target="schticks"),
        "weapons": Field("refs", target="weapons"),
        "attachments": ATTACHMENTS,
    },
    "vehicles": {
        "name": Field("string", max_length=255),
        "faction": Field("ref", nullable=True, target="factions", column="faction_id"),
        "juncture": Field("ref", nullable=True, target="junctures", column="juncture_id"),
        "action_values": Field("object", nullable=True),
        "active": Field("boolean"),
        "attachments": ATTACHMENTS,
    },
}

CAMPAIGN_FIELDS: dict[str, Field] = {
    "name": Field("string", max_length=255),
    "description": Field("text", nullable=True),
    "attachments": ATTACHMENTS,
}

ATTACHMENT_FIELDS: dict[str, Field] = {
    "name": Field("string", max_length=50),
    "filename": Field("string", max_length=255),
    "image": Field("string", max_length=64),
}

POSITION_FIELDS: dict[str, Field] = {
    "record": Field("string", max_length=MAX_REF_LENGTH),
    "context": Field("string", max_length=50),
    "x_position": Field("number"),
    "y_position": Field("number"),
    "style_overrides": Field("object", nullable=True),
}

IMAGE_FIELDS: dict[str, Field] = {
    "content_type": Field("string", max_length=100),
    "byte_size": Field("integer"),
    "data": Field("text"),
}

# The natural key of each section: unique within the template, and the sort order of the export
# (refs are derived from it, which is what makes an export reproducible).
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "factions": ("name",),
    "junctures": ("name",),
    "schticks": ("category", "name"),
    "weapons": ("name",),
    "characters": ("name",),
    "vehicles": ("name",),
}

# The polymorphic record_type of each section (portal.models.RECORD_TYPES keys).
RECORD_TYPE_OF: dict[str, str] = {
    "campaign": "Campaign",
    "factions": "Faction",
    "junctures": "Juncture",
    "schticks": "Schtick",
    "weapons": "Weapon",
    "characters": "Character",
    "vehicles": "Vehicle",
}

REF_PREFIX: dict[str, str] = {
    "factions": "faction",
    "junctures": "juncture",
    "schticks": "schtick",
    "weapons": "weapon",
    "characters": "character",
    "vehicles": "vehicle",
}

TOP_LEVEL_KEYS = (
    "format",
    "version",
    "exported_at",
    "campaign",
    *SECTIONS,
    "image_positions",
    "images",
)
