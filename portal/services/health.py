"""Health checks: database (with latency), Redis, and what later issues add (workers, pool)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from portal.extensions import db
from portal.services.queue import get_redis


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports failures, it does not raise them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_health() -> dict[str, Any]:
    """`down` when the database is unreachable, `degraded` when anything else is."""

    def ping_db() -> None:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks = {"database": _timed(ping_db), "redis": _timed(lambda: get_redis().ping())}
    if not checks["database"]["ok"]:
        status = "down"
    elif all(c["ok"] for c in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    return {"status": status, "checks": checks}
