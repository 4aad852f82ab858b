"""The rules a campaign's client-written fields must pass, before anything touches the pool.

The API's request models (`portal/blueprints/api/schemas.py`) call these for `name` and
`description`, so the rules live here once, in the service layer, whatever shape the request
came in (a JSON body, a JSON string inside a multipart form). Messages are in the original API's
wording (`"can't be blank"`) so the client can show them next to its form fields.
"""

from __future__ import annotations

import unicodedata

from portal.services.infra.text_input import text_problems

NAME_MAX = 255
DESCRIPTION_MAX = 10_000


class InvalidText(ValueError):
    """The value breaks a rule; `problems` are the messages, most important first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


def clean_name(name: str) -> str:
    """The name as stored: trimmed and NFC-normalised; InvalidText when blank, too long or
    holding control characters or unpaired surrogates. The length limit holds for the name as
    sent and as stored, so the documented maxLength is the rule applied here, and controls are
    checked before trimming (strip() would quietly drop a trailing \\x1f)."""
    if not name.strip():
        raise InvalidText(["can't be blank"])
    problems = text_problems(name, visible=True)
    stored = unicodedata.normalize("NFC", name.strip())
    if max(len(name), len(stored)) > NAME_MAX:
        problems.insert(0, f"is too long (maximum is {NAME_MAX} characters)")
    if problems:
        raise InvalidText(problems)
    return stored


def clean_description(description: str) -> str | None:
    """The description as stored (NFC; "" is None); tabs and line breaks are fine, other
    control characters and unpaired surrogates are not."""
    problems = text_problems(description, multiline=True)
    description = unicodedata.normalize("NFC", description)
    if len(description) > DESCRIPTION_MAX:
        problems.append(f"is too long (maximum is {DESCRIPTION_MAX} characters)")
    if problems:
        raise InvalidText(problems)
    return description or None
