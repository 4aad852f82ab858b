"""Run a unit of work (some writes and their COMMIT) again when the database connection drops.

The original system died with "nil connection" errors part-way through long seeding transactions.
A dropped connection loses the whole transaction on the server, so the only correct recovery is to
roll the session back and run the *whole* unit of work again on a fresh connection (the engine's
`pool_pre_ping` hands out a live one). Retrying a single statement would leave half a campaign.

`fn` must therefore be idempotent from the database's point of view: it starts from what is
committed and writes everything again. Anything else (bad data, a constraint, an ImageKit error)
is not retried: it is rolled back and re-raised to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy.exc as sa_exc
from sqlalchemy.orm import Session

log = logging.getLogger("portal.seeding")

T = TypeVar("T")


def is_connection_lost(exc: BaseException) -> bool:
    """True for errors that mean "the connection (and so the transaction) is gone, try again".

    SQLAlchemy flags a disconnect it recognises with `connection_invalidated`; every
    `OperationalError` (server shutdown, admin termination, a serialization failure, SQLite's
    "database is locked") is also transient by the DB-API's definition.
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError)


def run_unit_of_work(
    session: Session,
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    backoff_s: float = 0.05,
    context: Mapping[str, Any] | None = None,
) -> T:
    """Call `fn()` then commit; on a lost connection roll back and do both again.

    Returns what `fn` returned. Gives up after `attempts` tries, re-raising the last error; any
    other error is rolled back and re-raised at once. `context` goes into every log line (e.g.
    `{"campaign_id": ...}`) so a retry can be traced to what it was doing.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    extra = dict(context or {})
    for attempt in range(1, attempts + 1):
        try:
            result = fn()
            session.commit()
            return result
        except BaseException as exc:
            _rollback_quietly(session, extra)
            if not is_connection_lost(exc) or attempt == attempts:
                if is_connection_lost(exc):
                    log.error(
                        "unit_of_work.gave_up",
                        extra={**extra, "attempt": attempt, "error": _first_line(exc)},
                    )
                raise
            log.warning(
                "unit_of_work.retry",
                extra={
                    **extra,
                    "attempt": attempt,
                    "next_attempt": attempt + 1,
                    "error": _first_line(exc),
                },
            )
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _rollback_quietly(session: Session, extra: dict[str, Any]) -> None:
    """Roll back; a rollback on a dead connection may itself fail, which must not mask the
    original error (the session is usable again either way)."""
    try:
        session.rollback()
    except sa_exc.SQLAlchemyError as exc:  # pragma: no cover - depends on the driver's state
        log.warning("unit_of_work.rollback_failed", extra={**extra, "error": _first_line(exc)})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
