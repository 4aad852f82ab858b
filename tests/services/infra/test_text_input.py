"""Plain-text excerpts of stored text (descriptions may be HTML from the Chi War manager), as
the portal's lists show them: markup gone, entities decoded, cut on a word boundary."""

from __future__ import annotations

import pytest

from portal.services.infra.text_input import plain_text_excerpt


@pytest.mark.parametrize("empty", [None, "", "<p></p>"])
def test_no_text_is_an_empty_excerpt(empty: str | None) -> None:
    assert plain_text_excerpt(empty, 20) == ""


def test_text_of_exactly_the_length_is_shown_whole() -> None:
    assert plain_text_excerpt("<p>" + "a" * 20 + "</p>", 20) == "a" * 20
    assert plain_text_excerpt("a" * 21, 20) == "a" * 19 + "…"


def test_a_long_text_is_cut_at_the_last_word_that_fits() -> None:
    text = "one two three four five six seven eight"
    assert plain_text_excerpt(text, 20) == "one two three four…"
    assert plain_text_excerpt(f"<p>{text}</p>", 30) == "one two three four five six…"
    assert plain_text_excerpt(text, 33) == "one two three four five six…"


def test_a_long_word_is_cut_hard_rather_than_leave_a_short_excerpt() -> None:
    # The only space is early (before half the length): cutting there would show too little.
    text = "a" * 12 + " " + "b" * 40
    assert plain_text_excerpt(text, 30) == "a" * 12 + " " + "b" * 16 + "…"
    assert len(plain_text_excerpt(text, 30)) == 30


def test_an_excerpt_does_not_end_in_white_space_before_the_ellipsis() -> None:
    # &nbsp; is decoded after white space is collapsed, so it can sit right at the cut.
    text = "a" * 8 + "&nbsp;" * 4 + "b" * 10
    assert plain_text_excerpt(text, 10) == "a" * 8 + "…"
