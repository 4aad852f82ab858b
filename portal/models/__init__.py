"""All models, importable from one place (`from portal.models import Campaign`)."""

from portal.models.base import Base, utcnow
from portal.models.campaigns import POOL_STATUSES, POOL_TYPES, SEEDING_METHODS, Campaign
from portal.models.content import (
    Carry,
    Character,
    CharacterLink,
    CharacterSchtick,
    ContentRow,
    Faction,
    ImagePosition,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
)
from portal.models.images import IMAGE_SERVICES, ImageAttachment, ImageBlob
from portal.models.pool import PoolEvent, PoolSetting
from portal.models.users import ApiToken, LoginSession, User

# The polymorphic `record_type` / `positionable_type` values and the models they name.
RECORD_TYPES: dict[str, type[Campaign | ContentRow]] = {
    "Campaign": Campaign,
    "Schtick": Schtick,
    "Weapon": Weapon,
    "Faction": Faction,
    "Juncture": Juncture,
    "Character": Character,
    "Vehicle": Vehicle,
}

__all__ = [
    "IMAGE_SERVICES",
    "POOL_STATUSES",
    "POOL_TYPES",
    "RECORD_TYPES",
    "SEEDING_METHODS",
    "ApiToken",
    "Base",
    "Campaign",
    "Carry",
    "Character",
    "CharacterLink",
    "CharacterSchtick",
    "ContentRow",
    "Faction",
    "ImageAttachment",
    "ImageBlob",
    "ImagePosition",
    "Juncture",
    "LoginSession",
    "PoolEvent",
    "PoolSetting",
    "Schtick",
    "User",
    "Vehicle",
    "Weapon",
    "utcnow",
]
