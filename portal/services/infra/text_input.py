"""Rules every piece of client text must pass before it reaches the database.

JSON can carry text that PostgreSQL or UTF-8 cannot hold: a NUL (`\\u0000`), which PostgreSQL
refuses in text columns and even in query parameters, and an unpaired surrogate (`\\ud800`),
which `json.loads` accepts but no UTF-8 encoder will write. Either would surface as a database
or encoding error in the middle of a request (a 500) instead of a clear 4xx, so callers check
each field here first and report the messages under the field's name.
"""

from __future__ import annotations

import re

# C0 controls and DEL. Single-line text (names, emails) refuses all of them; multi-line text
# (descriptions) keeps tab, line feed and carriage return.
SINGLE_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
MULTI_LINE_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
UNPAIRED_SURROGATE = re.compile(r"[\ud800-\udfff]")

CONTROL_MESSAGE = "must not contain control characters"
SURROGATE_MESSAGE = "must be valid Unicode text (it holds an unpaired surrogate)"
NUL_MESSAGE = "must not contain NUL characters"


def text_problems(value: str, *, multiline: bool = False, controls: bool = True) -> list[str]:
    """The messages `value` earns: unpaired surrogates always; control characters unless
    `controls` is False, in which case only NUL (which no database column can store)."""
    problems = []
    if UNPAIRED_SURROGATE.search(value):
        problems.append(SURROGATE_MESSAGE)
    if not controls:
        if "\x00" in value:
            problems.append(NUL_MESSAGE)
    elif (MULTI_LINE_CONTROLS if multiline else SINGLE_LINE_CONTROLS).search(value):
        problems.append(CONTROL_MESSAGE)
    return problems
