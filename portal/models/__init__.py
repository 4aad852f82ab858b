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
from portal.models.users import ApiToken, CliAuthCode, JwtDenylist, LoginSession, User

# A campaign's content: one model per table, by the name its rows are counted and exported
# under, in the order a copy writes them (a juncture may name a faction; characters and vehicles
# name both). The one list every service that walks a campaign's content uses.
CONTENT_MODELS: dict[str, type[ContentRow]] = {
    "factions": Faction,
    "junctures": Juncture,
    "schticks": Schtick,
    "weapons": Weapon,
    "characters": Character,
    "vehicles": Vehicle,
}

# The polymorphic `record_type` / `positionable_type` values and the models they name.
RECORD_TYPES: dict[str, type[Campaign | ContentRow]] = {
    "Campaign": Campaign,
    **{model.__name__: model for model in CONTENT_MODELS.values()},
}

__all__ = [
    "CONTENT_MODELS",
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
    "CliAuthCode",
    "ContentRow",
    "Faction",
    "ImageAttachment",
    "ImageBlob",
    "ImagePosition",
    "Juncture",
    "JwtDenylist",
    "LoginSession",
    "PoolEvent",
    "PoolSetting",
    "Schtick",
    "User",
    "Vehicle",
    "Weapon",
    "utcnow",
]
