"""Validating what a client sends to create a campaign, before anything touches the pool.

Errors are collected per field in the original API's shape (`{"name": ["can't be blank"]}`) so
the client can show them next to its form fields; nothing is written when any field is wrong.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from portal.services.infra.text_input import text_problems

NAME_MAX = 255
DESCRIPTION_MAX = 10_000
ALLOWED_FIELDS = frozenset({"name", "description"})


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
    clean_name = ""  # set when the name is valid; any problem raises below
    if name is None or (isinstance(name, str) and not name.strip()):
        errors.setdefault("name", []).append("can't be blank")
    elif not isinstance(name, str):
        errors.setdefault("name", []).append("must be a string")
    else:
        # Checked as sent, before trimming: strip() would quietly drop trailing controls
        # such as \x1f, and the length limit holds for the name as sent and as stored, so the
        # OpenAPI maxLength a client validates against is the rule applied here.
        problems = text_problems(name, visible=True)
        stored = unicodedata.normalize("NFC", name.strip())
        if max(len(name), len(stored)) > NAME_MAX:
            problems.insert(0, f"is too long (maximum is {NAME_MAX} characters)")
        if problems:
            errors.setdefault("name", []).extend(problems)
        clean_name = stored

    description = campaign.get("description")
    if description is not None:
        if not isinstance(description, str):
            errors.setdefault("description", []).append("must be a string")
        else:
            problems = text_problems(description, multiline=True)
            description = unicodedata.normalize("NFC", description)
            if len(description) > DESCRIPTION_MAX:
                problems.append(f"is too long (maximum is {DESCRIPTION_MAX} characters)")
            if problems:
                errors["description"] = problems
            description = description or None
    if errors:
        raise InvalidCampaignInput(errors)
    return CampaignInput(name=clean_name, description=description)
