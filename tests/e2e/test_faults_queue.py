"""Faults of the queue side, against real processes over HTTP (issue 8): Redis stopped under
load, a worker killed in the middle of a refill, the pool exhausted by a burst.

Each test runs gunicorn and `rq worker --worker-class jobs.worker.AppWorker` processes on a private
copy of the template database (tests/support/processes.py) and asserts what docs/operations.md
promises: every create answers 201, nothing is lost (every returned campaign verifies and belongs to
its requester), nothing is handed out twice, and the pool gets back to its target on its own. The
in-process concurrency of claims is tests/services/pool/test_claim.py's; these go through the real
stack."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from rq import Queue

from portal.devtools.http_client import Reply
from portal.devtools.load import LoadLoop, run_burst
from portal.devtools.processes import kill_tree, wait_until
from portal.extensions import db
from portal.models import Campaign, PoolEvent, Schtick, Weapon
from portal.services.infra.queue import get_redis
from portal.services.seeding.verify import verify_campaigns
from tests.support.processes import Stack, require_redis, running_stack
from tests.support.smtp import RedisProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def assert_nothing_lost_or_doubled(stack: Stack, replies: list[Reply]) -> None:
    errors = [(r.status, r.error) for r in replies if r.status != 201]
    assert errors == [], errors[:5]
    check = stack.check(replies)
    assert check.returned == check.distinct == len(replies)
    assert check.assigned_twice == []
    assert check.wrong_owner == []
    assert check.not_verifying == []
    assert check.problems == []  # nor misnamed, nor a pool flag contradicting its status


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
        with LoadLoop(stack.port, stack.tokens[:4], "redis down") as load:
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
        replies = load.snapshot()
        sources = {r.source for r in replies}
        assert {"master_pool", "seeded"} <= sources, sources
        stack.wait_for_pool(target, timeout_s=90)
        # The same worker process did the refills, and is seen again (registered anew in the
        # empty Redis), so /health is back to ok.
        assert all(worker.poll() is None for worker in stack.workers.values())
        wait_until(lambda: stack.health()[1]["status"] == "ok", 30, "/health ok")
        assert_nothing_lost_or_doubled(stack, replies)


def test_a_burst_larger_than_the_pool_gets_a_campaign_for_everyone(
    databases, template_golden, redis_url, tmp_path
):
    """Twelve gamemasters at once, two creates each, against a pool of four: every request a
    201 (the pool's four and whatever the worker rebuilt meanwhile, the rest seeded in the
    request), all distinct, all complete, and the pool back at its target afterwards."""
    target, url = 4, require_redis(redis_url)
    with running_stack(
        databases, template_golden, url, tmp_path, users=12, master_target=target
    ) as stack:
        phase = run_burst(stack.port, stack.tokens, 2, "exhausted", timeout_s=120)
        replies = phase.replies
        sources = [r.source for r in replies]
        assert len(replies) == 24
        assert sources.count("master_pool") >= target
        assert sources.count("seeded") >= 1
        stack.wait_for_pool(target, timeout_s=60)
        assert_nothing_lost_or_doubled(stack, replies)


BUILD_TIMEOUT_S = 4  # POOL_BUILD_TIMEOUT for the kill test: reaped after 4 + 2 s


def test_a_worker_killed_mid_build_leaves_nothing_half_built_and_is_replaced(
    databases, template_golden, redis_url, tmp_path
):
    """SIGKILL of a worker's whole process tree (worker, RQ scheduler and the work horse)
    while the horse is inside a build's seeding transaction. The build's content never
    commits: its row stays `building` with no content and is never ready. Creates go on.
    The monitor job (what `rq cron` enqueues every minute) reaps the row once it is older
    than the build timeout, a new worker rebuilds the pool to target, and the clean-up job
    deletes the reaped row.

    The horse is caught mid-build for certain by holding a SHARE lock on image_attachments,
    which the seeding statement writes and a claim does not: the build commits its
    `building` row, then waits inside its transaction until the worker is dead."""
    target = 3
    with running_stack(
        databases, template_golden, require_redis(redis_url), tmp_path,
        users=4, master_target=target, env={"POOL_BUILD_TIMEOUT": str(BUILD_TIMEOUT_S)},
    ) as stack:  # fmt: skip
        (first,) = stack.workers.values()
        blocker = sa.create_engine(stack.database_url, poolclass=sa.pool.NullPool)
        replies: list[Reply] = []
        try:
            with blocker.connect() as lock_conn:
                lock_conn.exec_driver_sql("LOCK TABLE image_attachments IN SHARE MODE")
                replies.append(stack.client(0).create("before the kill"))  # queues a refill
                stuck_id = wait_until(lambda: _stuck_build(stack), 60, "a build waiting mid-seed")
                killed = kill_tree(first)
                lock_conn.rollback()
        finally:
            blocker.dispose()
        assert len(killed) >= 3  # the worker, its scheduler and the work horse
        # The killed build's transaction never commits: a row, no content, not ready.
        assert _content_rows(stack, stuck_id) == 0
        assert stack.pool_statuses().get("building") == 1
        for index in range(1, 4):  # creates go on without any worker (pool, then seeding)
            replies.append(stack.client(index).create(f"no worker {index}"))

        stack.start_worker()
        wait_until(lambda: _age_s(stack, stuck_id) > BUILD_TIMEOUT_S * 1.5, 30, "the reap age")
        _enqueue(stack, "jobs.monitor.monitor_job")
        wait_until(lambda: _status(stack, stuck_id) == "failed", 60, "the monitor to reap")
        stack.wait_for_pool(target, timeout_s=60)
        _enqueue(stack, "jobs.cleanup.cleanup_job")
        wait_until(lambda: _status(stack, stuck_id) is None, 60, "the clean-up to delete it")

        assert _reaped_events(stack) == [str(stuck_id)]
        assert stack.pool_statuses().get("building", 0) == 0
        assert_nothing_lost_or_doubled(stack, replies)
        with stack.app.app_context():
            ready = db.session.scalars(
                sa.select(Campaign.id).where(Campaign.pool_status == "ready")
            ).all()
            assert len(ready) >= target
            assert all(report.ok for report in verify_campaigns(db.session, ready))
            db.session.remove()


def _stuck_build(stack: Stack) -> uuid.UUID | None:
    """The building row, once its builder's seeding statement waits on our lock."""
    with stack.app.app_context():
        session = db.session
        building = session.scalar(sa.select(Campaign.id).where(Campaign.pool_status == "building"))
        waiting = session.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation"
                " WHERE NOT pg_locks.granted AND pg_class.relname = 'image_attachments'"
            )
        )
        db.session.remove()
        db.session.remove()
        return building if building and waiting else None


def _content_rows(stack: Stack, campaign_id: uuid.UUID) -> int:
    with stack.app.app_context():
        count = sum(
            db.session.scalar(sa.select(sa.func.count()).where(model.campaign_id == campaign_id))
            for model in (Schtick, Weapon)
        )
        db.session.remove()
        return count


def _status(stack: Stack, campaign_id: uuid.UUID) -> str | None:
    with stack.app.app_context():
        status = db.session.scalar(
            sa.select(Campaign.pool_status).where(Campaign.id == campaign_id)
        )
        db.session.remove()
        return status


def _age_s(stack: Stack, campaign_id: uuid.UUID) -> float:
    with stack.app.app_context():
        age = db.session.scalar(
            sa.select(sa.func.extract("epoch", sa.func.now() - Campaign.pool_created_at)).where(
                Campaign.id == campaign_id
            )
        )
        db.session.remove()
        return float(age or 0)


def _reaped_events(stack: Stack) -> list[str]:
    with stack.app.app_context():
        details = db.session.execute(
            sa.select(PoolEvent.campaign_id, PoolEvent.detail).where(
                PoolEvent.kind == "replenish_failed"
            )
        ).all()
        db.session.remove()
        return [str(cid) for cid, detail in details if (detail or {}).get("reaped")]


def _enqueue(stack: Stack, function: str) -> None:
    """What `rq cron` does on its schedule, now."""
    with stack.app.app_context():
        Queue("default", connection=get_redis()).enqueue(function)
