"""The one percentile definition of the project, nearest rank, in Python and in SQL.

The p-th percentile of n values is the ceil(p·n/100)-th smallest. `percentile` computes it over
values in hand (the pool status cards, `bench`); `percentile_rows` makes the database compute it
over a subquery (the charts, the analytics), so no window of events is shipped to Python. Both
live here so the rank is written once beside its twin: a card and a chart built from the same
events show the same figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa


def percentile(values: Iterable[float], pct: float, ndigits: int = 3) -> float | None:
    """Nearest-rank `pct` percentile of `values` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered), max(1, math.ceil(pct * len(ordered) / 100)))
    return round(ordered[rank - 1], ndigits)


def _rank_at(pct: int, n: Any) -> Any:
    """Nearest-rank position of the `pct` percentile among `n` sorted values: ceil(pct*n/100),
    in integer arithmetic so it is the same on both databases."""
    return (n * pct + 99) // 100


def percentile_rows(
    inner: sa.Select[*tuple[Any, ...]], key: str, value: str, pcts: Sequence[int] = (50, 95)
) -> sa.Select[*tuple[Any, ...]]:
    """Per `key` of the subquery `inner`: count (`n`), average, maximum and nearest-rank
    percentiles (`p50`, ...) of `value`, computed by the database with window functions
    (ROW_NUMBER/COUNT OVER a partition, which SQLite and PostgreSQL both have), one row per
    key."""
    sub = inner.subquery("v")
    ranked = sa.select(
        sub.c[key].label("k"),
        sub.c[value].label("x"),
        sa.func.row_number().over(partition_by=sub.c[key], order_by=sub.c[value]).label("rn"),
        sa.func.count().over(partition_by=sub.c[key]).label("n"),
    ).subquery("r")
    columns = [
        ranked.c.k,
        ranked.c.n,
        sa.func.avg(ranked.c.x).label("avg"),
        sa.func.max(ranked.c.x).label("max"),
    ]
    for pct in pcts:
        columns.append(
            sa.func.max(
                sa.case((ranked.c.rn == _rank_at(pct, ranked.c.n), ranked.c.x), else_=None)
            ).label(f"p{pct}")
        )
    return sa.select(*columns).group_by(ranked.c.k, ranked.c.n).order_by(ranked.c.k)


def rounded(value: Any, digits: int = 3) -> float | None:
    """An aggregate as a float (PostgreSQL returns averages as Decimal), None kept."""
    return None if value is None else round(float(value), digits)
