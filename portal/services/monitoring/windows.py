"""The time axis of the dashboard's charts: which windows exist, their buckets, their labels.

A window is a length and a bucket size (`1h` in 5-minute buckets, `24h` hourly, `7d` in
6-hour buckets). Buckets are aligned on the epoch, the same alignment `sql_time.epoch_bucket`
gives the events in SQL, so a series read from the database lands on these labels. Kept apart
from the series (`charts`) because the window is also what the HTTP layer validates: a bad
`?window=` is a 400 whose message lists the known windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# window name -> (length, bucket size in seconds)
WINDOWS: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 5 * 60),
    "24h": (timedelta(hours=24), 60 * 60),
    "7d": (timedelta(days=7), 6 * 60 * 60),
}
DEFAULT_WINDOW = "24h"


class WindowError(ValueError):
    """An unknown chart window; the message lists the known ones."""


def parse_window(raw: str | None) -> str:
    """The window name for `raw` (None/"" mean the default); WindowError for anything else."""
    if not raw:
        return DEFAULT_WINDOW
    if raw not in WINDOWS:
        raise WindowError(f"unknown window {raw!r}; use one of {', '.join(WINDOWS)}")
    return raw


@dataclass(frozen=True)
class WindowBuckets:
    """One window as of `now`: where it starts (the first bucket's start), the bucket size
    and every bucket's start in epoch seconds, oldest first."""

    name: str
    since: datetime
    size: int
    buckets: list[int]

    @property
    def labels(self) -> list[str]:
        """The buckets' starts as ISO timestamps (UTC): the charts' x axis."""
        return [datetime.fromtimestamp(b, UTC).isoformat() for b in self.buckets]


def window_buckets(name: str, now: datetime) -> WindowBuckets:
    """The buckets of window `name` (a known one: see `parse_window`) ending with `now`'s."""
    length, size = WINDOWS[name]
    start = int((now - length).timestamp()) // size * size
    end = int(now.timestamp()) // size * size
    since = datetime.fromtimestamp(start, UTC)
    return WindowBuckets(name, since, size, list(range(start, end + 1, size)))
