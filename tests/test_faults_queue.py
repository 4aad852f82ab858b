"""Faults of the queue side, against real processes over HTTP (issue 8): Redis stopped under
load, a worker killed in the middle of a refill, the pool exhausted by a burst.

Each test runs gunicorn and `rq worker --worker-class jobs.worker.AppWorker` processes on a
private copy of the template database (tests/processes.py) and asserts what DESIGN 8 promises:
every create answers 201, nothing is lost (every returned campaign verifies and belongs to its
requester), nothing is handed out twice, and the pool gets back to its target on its own. The
in-process concurrency of claims is tests/test_pool.py's; these go through the real stack.
"""

from __future__ import annotations

import pytest

from portal.services.bench_http import run_burst
from tests.processes import LoadLoop, running_stack, test_redis_url, wait_until
from tests.smtp_helpers import RedisProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
__all__ = ["test_redis_url"]  # a fixture


def assert_nothing_lost_or_doubled(stack, samples) -> None:
    errors = [(s.status, s.error) for s in samples if s.status != 201]
    assert errors == [], errors[:5]
    checks = stack.check(samples)
    assert checks["returned"] == checks["distinct"] == len(samples)
    assert checks["assigned_twice"] == 0
    assert checks["wrong_owner"] == []
    assert checks["not_verifying"] == []


def test_redis_stopped_under_load_falls_back_then_refills_resume(
    databases, template_golden, redis_process: RedisProcess, tmp_path
):
    """Redis (our own redis-server) stops while four gamemasters create campaigns: creates go
    on (pool, then seeding in the request) with no 5xx, /health says degraded; Redis comes
    back empty and, with neither gunicorn nor the worker restarted, refills resume and the pool
    is back at its target."""
    target = 4
    with running_stack(
        databases, template_golden, redis_process.url, tmp_path, users=4, master_target=target
    ) as stack:
        with LoadLoop(stack, clients=4, label="redis down") as load:
            wait_until(lambda: load.count() >= 4, 60, "creates with Redis up")
            redis_process.stop()
            during = load.count()
            enough = during + 2 * target + 4
            wait_until(lambda: load.count() >= enough, 120, "creates without Redis")
            status, health = stack.health()
            assert status == 200 and health["status"] == "degraded", health
            assert health["checks"]["redis"]["ok"] is False
            # Enough creates without Redis to have emptied the pool: seeding in the request.
            wait_until(lambda: stack.ready() == 0, 60, "the pool to drain")
            redis_process.start()  # same port, no data: a restarted cache without persistence
            after = load.count()
            wait_until(lambda: load.count() >= after + 4, 60, "creates with Redis back")
        samples = load.all()
        sources = {s.source for s in samples}
        assert {"master_pool", "seeded"} <= sources, sources
        stack.wait_for_pool(target, timeout_s=90)
        # The same worker process did the refills, and is seen again (registered anew in the
        # empty Redis), so /health is back to ok.
        assert all(worker.poll() is None for worker in stack.workers.values())
        wait_until(lambda: stack.health()[1]["status"] == "ok", 30, "/health ok")
        assert_nothing_lost_or_doubled(stack, samples)


def test_a_burst_larger_than_the_pool_gets_a_campaign_for_everyone(
    databases, template_golden, test_redis_url, tmp_path
):
    """Twelve gamemasters at once, two creates each, against a pool of four: every request a
    201 (the pool's four and whatever the worker rebuilt meanwhile, the rest seeded in the
    request), all distinct, all complete, and the pool back at its target afterwards."""
    target = 4
    with running_stack(
        databases, template_golden, test_redis_url, tmp_path, users=12, master_target=target
    ) as stack:
        phase = run_burst(stack.port, stack.users, 2, "exhausted", timeout_s=120)
        samples = phase.samples
        sources = [s.source for s in samples]
        assert len(samples) == 24
        assert sources.count("master_pool") >= target
        assert sources.count("seeded") >= 1
        stack.wait_for_pool(target, timeout_s=60)
        assert_nothing_lost_or_doubled(stack, samples)
