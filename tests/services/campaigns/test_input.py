"""The rules for a campaign's client-written name and description, at the service layer:
what is stored, and the messages a refusal carries (most important first)."""

from __future__ import annotations

import pytest

from portal.services.campaigns.input import (
    DESCRIPTION_MAX,
    NAME_MAX,
    InvalidText,
    clean_description,
    clean_name,
)


@pytest.mark.parametrize("blank", ["", "   ", "\t \n"])
def test_a_blank_name_is_refused_as_blank(blank: str) -> None:
    with pytest.raises(InvalidText) as caught:
        clean_name(blank)
    assert caught.value.problems == ["can't be blank"]
    assert str(caught.value) == "can't be blank"


def test_a_name_too_long_and_with_controls_names_the_length_first() -> None:
    with pytest.raises(InvalidText) as caught:
        clean_name("x" * NAME_MAX + "\x07")
    assert caught.value.problems == [
        f"is too long (maximum is {NAME_MAX} characters)",
        "must not contain control characters",
    ]
    assert str(caught.value) == (
        f"is too long (maximum is {NAME_MAX} characters), must not contain control characters"
    )


def test_a_name_is_stored_trimmed_and_nfc_normalised() -> None:
    assert clean_name("  Cafe\u0301 Kong  ") == "Caf\u00e9 Kong"


def test_a_description_of_exactly_the_maximum_is_accepted() -> None:
    longest = "d" * DESCRIPTION_MAX
    assert clean_description(longest) == longest
    with pytest.raises(InvalidText) as caught:
        clean_description(longest + "d")
    assert caught.value.problems == [f"is too long (maximum is {DESCRIPTION_MAX} characters)"]


def test_a_description_need_not_show_anything() -> None:
    # Only names must be visible: a description of line breaks (an empty text area that kept
    # its newline) is kept as sent, and an empty one is no description.
    assert clean_description("\n\n") == "\n\n"
    assert clean_description("\u200b") == "\u200b"
    assert clean_description("") is None
