"""Calendar arithmetic on timestamp columns, in SQL, for SQLite and PostgreSQL alike.

The portal's charts and the demand model group `pool_events` by time in the database (no rows
shipped to Python), and the two databases store time differently: SQLite keeps our timestamps
as naive UTC text that `strftime` reads as UTC; PostgreSQL has real `timestamptz`, whose fields
must be read in UTC explicitly, whatever the session's TimeZone. One expression per dialect
here, so every caller groups the same way on `make run` and in production.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def epoch_bucket(session: Session, column: Any, size: int) -> sa.ColumnElement[int]:
    """`column` (a timestamp) floored to a multiple of `size` seconds since the epoch."""
    if _is_sqlite(session):
        seconds: sa.ColumnElement[Any] = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        return (seconds // size) * size
    seconds = sa.cast(sa.func.floor(sa.extract("epoch", column) / size), sa.BigInteger)
    return seconds * size


def hour_of_day(session: Session, column: Any) -> sa.ColumnElement[int]:
    """The UTC hour (0-23) of a timestamp column."""
    if _is_sqlite(session):
        return sa.cast(sa.func.strftime("%H", column), sa.Integer)
    return sa.cast(sa.extract("hour", sa.func.timezone("UTC", column)), sa.Integer)


def day_of_week(session: Session, column: Any) -> sa.ColumnElement[int]:
    """The UTC weekday of a timestamp column, 0 = Sunday ... 6 = Saturday (both databases
    count that way natively: SQLite's %w and PostgreSQL's `dow`)."""
    if _is_sqlite(session):
        return sa.cast(sa.func.strftime("%w", column), sa.Integer)
    return sa.cast(sa.extract("dow", sa.func.timezone("UTC", column)), sa.Integer)
