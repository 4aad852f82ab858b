"""A database that is down or restarting: a clean 503 with Retry-After, never a 500 (the fault
test in test_faults_database.py shows it against a real restart; these pin the rules on every
backend, without one)."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Blueprint, Flask

from portal.blueprints.errors import DATABASE_RETRY_AFTER_S
from portal.extensions import csrf, db
from portal.services.infra.database import close_request_session, database_unavailable


def wrapped(orig: Exception, invalidated: bool = False) -> sa_exc.DBAPIError:
    """The exception SQLAlchemy raises for a driver error, as it builds it."""
    return sa_exc.DBAPIError.instance("SELECT 1", {}, orig, psycopg.Error, invalidated)


@pytest.mark.parametrize(
    ("orig", "invalidated", "unavailable"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), False, True),
        (psycopg.errors.AdminShutdown("terminating connection"), False, True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), False, True),
        (psycopg.errors.CrashShutdown("terminating connection"), False, True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True, True),
        (psycopg.errors.UndefinedTable('relation "x" does not exist'), False, False),
        (psycopg.errors.UniqueViolation("duplicate key"), False, False),
        (psycopg.errors.QueryCanceled("statement timeout"), False, False),
    ],
)
def test_what_counts_as_the_database_being_unavailable(orig, invalidated, unavailable):
    assert database_unavailable(wrapped(orig, invalidated)) is unavailable


def test_non_database_errors_are_not_outages():
    assert not database_unavailable(RuntimeError("no"))
    import sqlite3

    no_table = sa_exc.DBAPIError.instance(
        "SELECT 1", {}, sqlite3.OperationalError("no such table: x"), sqlite3.Error
    )
    assert isinstance(no_table, sa_exc.OperationalError) and not database_unavailable(no_table)


@pytest.fixture
def outage_views(app: Flask) -> Flask:
    """Views that fail as they do while PostgreSQL restarts, and one with a bug in its SQL."""
    api = Blueprint("outage_api", __name__, url_prefix="/api/v2/outage")
    csrf.exempt(api)
    portal = Blueprint("outage_portal", __name__, url_prefix="/outage")

    @api.post("/down")
    @portal.get("/down")
    def down():
        db.session.execute(sa.text("SELECT 1"))  # a transaction the handler must roll back
        raise wrapped(psycopg.errors.AdminShutdown("terminating connection"))

    @api.get("/bug")
    def bug():
        db.session.execute(sa.text("SELECT * FROM no_such_table"))
        return "unreachable"

    app.register_blueprint(api)
    app.register_blueprint(portal)
    return app


def test_an_unavailable_database_is_a_json_503_with_retry_after(client, outage_views):
    response = client.post("/api/v2/outage/down", json={})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    body = response.get_json()
    assert body["status"] == 503 and "database is unavailable" in body["message"]
    assert "terminating" not in response.get_data(as_text=True)  # no driver detail leaks


def test_the_portal_gets_an_html_503(client, outage_views):
    response = client.get("/outage/down")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    assert "database is unavailable" in response.get_data(as_text=True)


def test_a_statement_that_is_wrong_is_still_a_500(client, outage_views):
    response = client.get("/api/v2/outage/bug")
    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert "no_such_table" not in response.get_data(as_text=True)


def test_closing_a_session_whose_connection_died_does_not_fail(app):
    """The first close fails (ROLLBACK on a dead connection) and invalidates the connection; the
    session is closed again instead of the error escaping the request's teardown."""
    calls = {"n": 0}
    session = db.session
    session.execute(sa.text("SELECT 1"))
    real_close = session.registry().close

    def close_once_broken() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise wrapped(psycopg.OperationalError("consuming input failed"), invalidated=True)
        real_close()

    session.registry().close = close_once_broken
    close_request_session(session)
    assert calls["n"] == 2 and not session.registry.has()

    session.execute(sa.text("SELECT 1"))
    broken = session.registry()
    broken.close = lambda: (_ for _ in ()).throw(
        wrapped(psycopg.errors.UndefinedTable("relation does not exist"))
    )
    with pytest.raises(sa_exc.ProgrammingError):
        close_request_session(session)  # not an outage: not hidden
    del broken.close  # the real close again, for the fixture's teardown
    session.remove()
