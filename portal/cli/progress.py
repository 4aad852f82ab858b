"""The progress bar of the long-running dev-tool commands (`bench`, `pool simulate`).

It goes to stderr, so that stdout carries the command's JSON and nothing else (`| jq .ratio`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from portal.devtools.scratch import Tick


@contextlib.contextmanager
def progress(length: int, label: str) -> Iterator[Tick]:
    """A progress bar of `length` units on stderr; the yielded `Tick` advances it by one and
    shows what was just done."""
    with click.progressbar(
        length=length, label=label, file=sys.stderr, show_pos=True, item_show_func=str
    ) as bar:

        def tick(done: str) -> None:
            bar.update(1, done)

        yield tick
