"""Engine-level database concerns shared by every service: SQLite pragmas, and telling a
database that is unreachable for now from a statement that failed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Engine, Result, make_url
from sqlalchemy.orm import scoped_session

log = logging.getLogger("portal.database")


def prepare_sqlite_file(database_url: str, instance_path: Path) -> None:
    """Before SQLite first opens its file: create the instance folder (0700) when the file lives
    in it, and create the file itself readable by its owner only (0600), since it holds password
    and token hashes. SQLite gives its -wal and -shm files the mode of the database file. An
    existing file is left alone; a folder that cannot be made is left for the start-up to report
    (`flask serve` says in one line that it cannot open DATABASE_URL)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if url.database.startswith("file:"):
        return
    path = Path(url.database).resolve()
    if path.exists():
        return
    from portal.config import ensure_instance_folder

    try:
        if path.parent == instance_path.resolve():
            ensure_instance_folder(instance_path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        log.warning(
            "database.sqlite_file_not_created", extra={"path": str(path), "error": str(exc)}
        )
        return
    os.close(fd)


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


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an INSERT, UPDATE or DELETE matched.

    `Session.execute` is typed to return a `Result`, which has no row count; for those
    statements it returns a `CursorResult`, which does."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} has no row count: not an INSERT/UPDATE/DELETE")
    return result.rowcount


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
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    return type(orig).__module__.startswith("psycopg")


def close_request_session(session: scoped_session[Any]) -> None:
    """End a request's session even when the database went away under it.

    Closing rolls back the open transaction; when the server has just crashed or restarted, that
    ROLLBACK fails (the connection is gone) and the error escaped the request's teardown, so the
    WSGI server answered a bare HTML 500 in place of the response the view had already built
    (a 201 included). The failed close has invalidated the connection, so closing again releases
    it to the pool without touching the server; any other error is still raised."""
    try:
        session.remove()
    except sa_exc.DBAPIError as error:
        if not database_unavailable(error):
            raise
        log.warning(
            "database.session_close_failed",
            extra={"error": (str(error.orig).strip().splitlines() or [""])[0][:200]},
        )
        session.remove()
