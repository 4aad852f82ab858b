"""Engine-level database concerns shared by every service: SQLite pragmas, and telling a
database that is unreachable for now from a statement that failed."""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import Engine


def install_sqlite_pragmas(engine: Engine) -> None:
    """On SQLite, enforce foreign keys (cascades rely on them) and use WAL so the embedded
    worker thread and web requests do not block each other's reads."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


# SQLSTATE classes that mean "the server cannot serve you right now", not "your statement is
# wrong": 08 connection exception, 57P operator intervention (admin/crash shutdown, cannot
# connect now: the server is starting up or shutting down).
UNAVAILABLE_SQLSTATES = ("08", "57P")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the server is unreachable for now (restarting, down, our
    connection dropped) rather than that a statement failed: the request can be retried as it is.

    SQLAlchemy flags the disconnects it recognises (`connection_invalidated`). A failure to
    connect at all (refused, the server starting up) is an OperationalError from the driver that
    carries no SQLSTATE (refused) or a 08/57P one. Anything else, SQLite's "no such table"
    included, is a bug or bad data and stays a 500."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    return type(orig).__module__.startswith("psycopg")
