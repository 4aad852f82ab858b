"""The one percentile definition of the project: nearest rank.

The p-th percentile of n values is the ceil(p·n/100)-th smallest. The portal's charts compute
the same rank in SQL (`portal_metrics._rank_at`), so a card and a chart built from the same
events show the same figure, and `bench` reports with it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: float, ndigits: int = 3) -> float | None:
    """Nearest-rank `pct` percentile of `values` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered), max(1, math.ceil(pct * len(ordered) / 100)))
    return round(ordered[rank - 1], ndigits)
