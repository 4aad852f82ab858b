"""Rules every piece of client text must pass before it reaches the database.

JSON can carry text that PostgreSQL or UTF-8 cannot hold: a NUL (`\\u0000`), which PostgreSQL
refuses in text columns and even in query parameters, and an unpaired surrogate (`\\ud800`),
which `json.loads` accepts but no UTF-8 encoder will write. Either would surface as a database
or encoding error in the middle of a request (a 500) instead of a clear 4xx, so callers check
each field here first and report the messages under the field's name.

Text that is stored and shown to other people (names, descriptions) must also not deceive the
reader (docs/security.md): no C0 or C1 control characters (descriptions may keep tab and
newlines), no bidirectional embedding, override or isolate controls (U+202A-U+202E,
U+2066-U+2069: `\\u202e` makes `evil.exe` read as `exe.live`), and a name must show something:
one made only of zero-width or other invisible characters looks like no name at all.

`plain_text_excerpt` is for showing stored text that may hold markup (descriptions imported
from the Chi War manager are HTML) as the plain text a reader expects.
"""

from __future__ import annotations

import re

from markupsafe import Markup

# C0 controls, DEL and the C1 controls (U+0080-U+009F, e.g. U+0085 NEXT LINE). Single-line
# text (names, emails) refuses all of them; multi-line text (descriptions) keeps tab, line
# feed and carriage return.
SINGLE_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTI_LINE_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
UNPAIRED_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What draws nothing on its own, as the body of a regex character class (the OpenAPI
# document's name pattern uses the same class, so clients validate by the server's rule):
# white space, C0/C1 controls, the soft hyphen, zero-width spaces, joiners and direction marks,
# the bidi controls, invisible operators, variation selectors, the BOM, and the letters that
# render as blank (Hangul fillers, the braille blank). Basic Multilingual Plane only, so the
# class is valid in every regex dialect (JSON Schema patterns are ECMA-262).
NOT_VISIBLE_CLASS = (
    r"\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    r"\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f"
    r"\ufeff\uffa0"
)
INVISIBLE_ONLY = re.compile(f"[{NOT_VISIBLE_CLASS}]*")

CONTROL_MESSAGE = "must not contain control characters"
BIDI_MESSAGE = (
    "must not contain bidirectional control characters (U+202A to U+202E, U+2066 to U+2069)"
)
INVISIBLE_MESSAGE = "must contain visible characters"
SURROGATE_MESSAGE = "must be valid Unicode text (it holds an unpaired surrogate)"
NUL_MESSAGE = "must not contain NUL characters"


def is_invisible(value: str) -> bool:
    """Whether `value` would show nothing: empty, or only invisible characters."""
    return INVISIBLE_ONLY.fullmatch(value) is not None


def text_problems(
    value: str, *, multiline: bool = False, controls: bool = True, visible: bool = False
) -> list[str]:
    """The messages `value` earns: unpaired surrogates always; control characters and
    bidirectional controls unless `controls` is False, in which case only NUL (which no
    database column can store); with `visible`, text that shows nothing (for names)."""
    problems = []
    if UNPAIRED_SURROGATE.search(value):
        problems.append(SURROGATE_MESSAGE)
    if not controls:
        if "\x00" in value:
            problems.append(NUL_MESSAGE)
        return problems
    if (MULTI_LINE_CONTROLS if multiline else SINGLE_LINE_CONTROLS).search(value):
        problems.append(CONTROL_MESSAGE)
    if BIDI_CONTROLS.search(value):
        problems.append(BIDI_MESSAGE)
    if visible and value and is_invisible(value):
        problems.append(INVISIBLE_MESSAGE)
    return problems


def plain_text_excerpt(value: str | None, length: int = 120) -> str:
    """`value` as plain text: tags and comments stripped, entities decoded (`&amp;` -> `&`),
    whitespace collapsed, cut at `length` characters on a word boundary with an ellipsis.
    The result is text, not markup: the template escapes it again when showing it."""
    if not value:
        return ""
    text = Markup(value).striptags()  # strips tags, unescapes entities, collapses whitespace
    text = str(text)
    if len(text) <= length:
        return text
    cut = text[: length - 1]
    if " " in cut[length // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"
