"""Health checks for `GET /health`: database, Redis, workers and the master pool.

The database decides between up and down (nothing works without it: 503); every other check
can only make the service `degraded` (200), because campaign creation still works without
Redis, workers or a full pool, only slower. Load balancers and the portal poll this every
second, so it stays cheap: the database and Redis pings are live (they are what "is it up"
means), Redis is reached through its own client with sub-second socket timeouts, and the
worker and pool parts, which cost a few queries, are cached in the process for about a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from sqlalchemy import text

from portal.appcontext import current_flask_app, db_session
from portal.extensions import db
from portal.services.infra.queue import get_redis

log = logging.getLogger("portal.health")

CACHE_SECONDS = 1.0
REDIS_TIMEOUT_S = 0.5

_cache_lock = threading.Lock()


def _failure(name: str, exc: Exception, message: str) -> dict[str, Any]:
    """A failed check as reported: a fixed message only. The exception's text names hosts,
    ports and driver details, so it goes to the log, never into the answer (docs/security.md)."""
    log.warning(
        "health.check_failed",
        extra={"check": name, "error": f"{type(exc).__name__}: {exc}"[:300]},
    )
    return {"ok": False, "error": message}


def _timed(name: str, check: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports failures, it does not raise them
        return _failure(name, exc, f"{name} unreachable")
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def health_redis(app: Flask) -> redis.Redis:
    """The Redis client health checks use: the app's own in embedded mode, else a separate
    client with short timeouts (the app's waits seconds, which a poller cannot afford)."""
    settings = app.config["SETTINGS"]
    if settings.embedded_queue:
        return get_redis(app)
    client = app.extensions.get("health_redis")
    if client is None:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        app.extensions["health_redis"] = client
    return client


def workers_required(app: Flask) -> bool:
    """Workers are expected with a real Redis, and in embedded mode only in the process that
    runs the embedded worker thread (another process cannot see an in-process queue)."""
    from portal.runtime import current_embedded_app

    return not app.config["SETTINGS"].embedded_queue or current_embedded_app() is app


def _workers_check(app: Flask) -> dict[str, Any]:
    from portal.services.monitoring.monitor import workers_seen

    required = workers_required(app)
    try:
        seen = workers_seen(health_redis(app))
    except Exception as exc:
        failure = _failure("workers", exc, "worker registry unreadable")
        return {**failure, "ok": not required, "required": required}
    return {
        "ok": seen["count"] > 0 or not required,
        "required": required,
        "count": seen["count"],
        "queues": seen["queues"],
    }


def _pool_check(app: Flask) -> dict[str, Any]:
    """The master pool: degraded when it is empty (creation falls back to slow seeding)."""
    import sqlalchemy as sa

    from portal.models import Campaign
    from portal.services.campaigns.records import find_master_template
    from portal.services.pool.config import load_pool_config
    from portal.services.pool.switches import switch_states

    session = db_session()
    try:
        template = find_master_template(session)
        if template is None or template.template_version is None:
            return {"ok": True, "template": False}
        config = load_pool_config(session, app.config["SETTINGS"])
        switches = switch_states(session, app.config["SETTINGS"], config)
        ready = session.execute(
            sa.select(sa.func.count()).where(
                Campaign.is_pool.is_(True),
                Campaign.pool_type == "master",
                Campaign.pool_status == "ready",
                Campaign.template_version == template.template_version,
            )
        ).scalar_one()
    except Exception as exc:
        session.rollback()
        return _failure("pool", exc, "pool state unreadable")
    session.rollback()  # end the read transaction; nothing was written
    target = config.target_for("master")
    # Switched off on purpose is not a fault: reported, never degrading (docs/operations.md).
    return {
        "ok": ready > 0 or target == 0,
        "ready": ready,
        "target": target,
        "low_watermark": config.low_watermark,
        "low": ready < config.low_watermark,
        "assignment": "on" if switches["assignment"]["enabled"] else "off",
        "refills": "running" if switches["refills"]["enabled"] else "paused",
    }


def _cached(app: Flask, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    ttl = float(app.config.get("HEALTH_CACHE_SECONDS", CACHE_SECONDS))
    cache: dict[str, tuple[float, dict[str, Any]]] = app.extensions.setdefault("health_cache", {})
    now = time.monotonic()
    with _cache_lock:
        hit = cache.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
    value = compute()
    with _cache_lock:
        cache[key] = (time.monotonic(), value)
    return value


def clear_health_cache(app: Flask) -> None:
    app.extensions.pop("health_cache", None)


def check_health(app: Flask | None = None) -> dict[str, Any]:
    """`{"status": "ok" | "degraded" | "down", "checks": {...}}`; down only without database."""
    app = app or current_flask_app()

    def ping_db() -> None:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks: dict[str, dict[str, Any]] = {
        "database": _timed("database", ping_db),
        "redis": _timed("redis", lambda: health_redis(app).ping()),
    }
    if checks["redis"]["ok"]:
        checks["workers"] = _cached(app, "workers", lambda: _workers_check(app))
    else:
        required = workers_required(app)
        checks["workers"] = {"ok": not required, "required": required, "error": "redis down"}
    if checks["database"]["ok"]:
        checks["pool"] = _cached(app, "pool", lambda: _pool_check(app))
    else:
        checks["pool"] = {"ok": False, "error": "database unreachable"}
    if not checks["database"]["ok"]:
        status = "down"
    elif all(check["ok"] for check in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    return {"status": status, "checks": checks}
