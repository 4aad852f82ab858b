"""Validating what a client sends to create a campaign, before anything touches the pool.

Errors are collected per field in the original API's shape (`{"name": ["can't be blank"]}`) so
the client can show them next to its form fields; nothing is written when any field is wrong.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

NAME_MAX = 255
DESCRIPTION_MAX = 10_000
ALLOWED_FIELDS = frozenset({"name", "description"})
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidCampaignInput(ValueError):
    """The input is wrong; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k} {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class CampaignInput:
    name: str
    description: str | None


def parse_campaign_input(body: Any) -> CampaignInput:
    """`{"campaign": {"name": ..., "description": ...}}` -> CampaignInput, or the field errors."""
    if not isinstance(body, dict):
        raise InvalidCampaignInput({"base": ["request body must be a JSON object"]})
    unknown_top = sorted(set(body) - {"campaign"})
    campaign = body.get("campaign")
    if not isinstance(campaign, dict):
        raise InvalidCampaignInput({"campaign": ["must be an object with a name"]})
    errors: dict[str, list[str]] = {}
    for key in unknown_top:
        errors.setdefault(key[:50], []).append("is not a known field")
    for key in sorted(set(campaign) - ALLOWED_FIELDS):
        errors.setdefault(str(key)[:50], []).append("is not a known field")

    name = campaign.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        errors.setdefault("name", []).append("can't be blank")
    elif not isinstance(name, str):
        errors.setdefault("name", []).append("must be a string")
    else:
        name = unicodedata.normalize("NFC", name.strip())
        if len(name) > NAME_MAX:
            errors.setdefault("name", []).append(f"is too long (maximum is {NAME_MAX} characters)")
        if CONTROL_CHARS.search(name) or "\n" in name or "\r" in name or "\t" in name:
            errors.setdefault("name", []).append("must not contain control characters")

    description = campaign.get("description")
    if description is not None:
        if not isinstance(description, str):
            errors.setdefault("description", []).append("must be a string")
        else:
            description = unicodedata.normalize("NFC", description)
            if len(description) > DESCRIPTION_MAX:
                errors.setdefault("description", []).append(
                    f"is too long (maximum is {DESCRIPTION_MAX} characters)"
                )
            if CONTROL_CHARS.search(description):
                errors.setdefault("description", []).append("must not contain control characters")
            description = description or None
    if errors:
        raise InvalidCampaignInput(errors)
    return CampaignInput(name=name, description=description)
