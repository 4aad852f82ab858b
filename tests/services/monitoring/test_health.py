"""`GET /health`: ok / degraded / down from real parts: a redis-server this test starts, stops
and starts again on its own port, an unreachable database, registered RQ workers, a real pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from rq import Worker

from portal.extensions import db
from portal.runtime import set_embedded_app
from portal.services.infra.queue import get_redis
from portal.services.monitoring.health import check_health, clear_health_cache
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import TEST_HEALTH_TOKEN, app_on, make_app
from tests.support.databases import TestDatabases
from tests.support.smtp import RedisProcess


def get_health(app: Flask) -> tuple[int, dict]:
    response = app.test_client().get("/health", headers={"X-Health-Token": TEST_HEALTH_TOKEN})
    return response.status_code, response.get_json()


def register_worker(app: Flask) -> Worker:
    """Register a worker as a starting `rq worker` does (birth + heartbeat in Redis)."""
    worker = Worker(["seeding", "default"], connection=get_redis(app))
    worker.register_birth()
    return worker


@pytest.fixture
def own_redis_app(
    databases: TestDatabases, migrated_golden: str, redis_process: RedisProcess
) -> Iterator[Flask]:
    """Production mode (REDIS_URL) on the test's own redis-server; no health cache."""
    yield from app_on(databases, migrated_golden, redis_process.url, HEALTH_CACHE_SECONDS=0)


def test_redis_down_is_degraded_and_ok_again_when_it_is_back(
    own_redis_app: Flask, redis_process: RedisProcess
) -> None:
    register_worker(own_redis_app)
    status, body = get_health(own_redis_app)
    assert (status, body["status"]) == (200, "ok"), body
    assert body["checks"]["workers"]["count"] == 1

    redis_process.stop()
    status, body = get_health(own_redis_app)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["workers"]["ok"] is False

    redis_process.start()
    # Redis came back empty (no persistence): a worker registers again when it restarts.
    register_worker(own_redis_app)
    status, body = get_health(own_redis_app)
    assert (status, body["status"]) == (200, "ok"), body


def test_no_worker_is_degraded_in_production(own_redis_app: Flask) -> None:
    status, body = get_health(own_redis_app)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["workers"] == {
        "ok": False,
        "required": True,
        "count": 0,
        "queues": {"seeding": 0, "default": 0},
    }
    assert body["checks"]["redis"]["ok"] is True


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unreachable_database_is_down_with_503(
    backend: str, tmp_path: Path, dead_port: int
) -> None:
    url = (
        f"sqlite:///{tmp_path}/no-such-dir/db.sqlite3"
        if backend == "sqlite"
        else f"postgresql://nobody@127.0.0.1:{dead_port}/nothing"
    )
    app = make_app(url)
    with app.app_context():
        status, body = get_health(app)
        db.engine.dispose()
    assert (status, body["status"]) == (503, "down")
    assert body["checks"]["database"]["ok"] is False and body["checks"]["database"]["error"]
    assert body["checks"]["redis"]["ok"] is True


def test_the_pool_degrades_when_empty_and_reports_its_level(template_app: Flask) -> None:
    template_app.config["HEALTH_CACHE_SECONDS"] = 0
    set_embedded_app(None)
    settings = template_app.config["SETTINGS"]
    set_pool_setting(db.session, "master_target", 2)
    set_pool_setting(db.session, "low_watermark", 2)
    db.session.commit()
    if not settings.embedded_queue:
        register_worker(template_app)

    status, body = get_health(template_app)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["pool"] == {
        "ok": False,
        "ready": 0,
        "target": 2,
        "low_watermark": 2,
        "low": True,
        "assignment": "on",
        "refills": "running",
    }

    replenish_pool(db.session, get_redis(template_app), settings, "master")
    status, body = get_health(template_app)
    assert (status, body["status"]) == (200, "ok"), body
    assert body["checks"]["pool"]["ready"] == 2 and body["checks"]["pool"]["low"] is False


def test_pool_and_workers_are_cached_for_cheap_polling(template_app: Flask) -> None:
    template_app.config["HEALTH_CACHE_SECONDS"] = 3600
    set_pool_setting(db.session, "master_target", 1)
    db.session.commit()
    first = check_health(template_app)["checks"]["pool"]
    replenish_pool(db.session, get_redis(template_app), template_app.config["SETTINGS"], "master")

    assert check_health(template_app)["checks"]["pool"] == first  # served from the cache
    clear_health_cache(template_app)
    assert check_health(template_app)["checks"]["pool"]["ready"] == 1


def test_the_embedded_worker_counts_in_the_process_that_runs_it(
    databases: TestDatabases, migrated_golden: str
) -> None:
    from jobs.embedded import start_embedded_worker

    for app in app_on(databases, migrated_golden, "", HEALTH_CACHE_SECONDS=0):
        # Another process on the embedded queue (a CLI command) cannot see the worker.
        assert check_health(app)["checks"]["workers"]["required"] is False
        set_embedded_app(app)  # the web process declared its worker, which is not running
        try:
            body = check_health(app)
            assert body["status"] == "degraded" and body["checks"]["workers"]["count"] == 0
        finally:
            set_embedded_app(None)

        thread = start_embedded_worker(app)
        try:
            body = check_health(app)
            for _ in range(200):
                if body["status"] == "ok":
                    break
                thread.stop_event.wait(0.05)
                body = check_health(app)
        finally:
            thread.stop(timeout=30)
            set_embedded_app(None)
        assert body["status"] == "ok", body
        assert body["checks"]["workers"]["count"] == 1
