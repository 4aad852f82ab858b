"""Parallel refills: slot reservation, builds in flight, the per-pool cap, K-campaign builds, and
many triggers on many workers that never overfill a pool (docs/pool.md, "Refills").

The workers of the concurrency tests are RQ workers running in threads of the test process
(`EmbeddedWorker`, the class of the embedded worker thread) on the test's Redis: real jobs,
real helper fan-out, real `building` rows, on both backends. PostgreSQL runs the builds truly
at once; SQLite serializes their transactions, so "W builds in flight" is asserted there only
as an upper bound.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from rq import Queue

from jobs.embedded import EmbeddedWorker
from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, PoolEvent, utcnow
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import JobPath, get_redis
from portal.services.pool.config import load_pool_config, set_pool_setting
from portal.services.pool.replenish import (
    BUSY,
    FULL,
    Reservation,
    build_reserved,
    pool_level,
    replenish_pool,
    reserve_build,
)
from portal.services.pool.status import build_timeline
from portal.services.seeding.verify import verify_campaign

TARGET = 12


def configure(**values: int) -> None:
    for key, value in values.items():
        set_pool_setting(db.session, key, value)
    db.session.commit()


def statuses() -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Campaign.pool_status, sa.func.count())
        .where(Campaign.is_pool.is_(True))
        .group_by(Campaign.pool_status)
    ).all()
    return {status: count for status, count in rows}


def reserve(template: Campaign, *, target: int = TARGET) -> Reservation | str:
    config = load_pool_config(db.session, settings_of(current_app))
    return reserve_build(
        db.session,
        template,
        "master",
        template.user_id,
        None,
        target=target,
        batch_limit=config.build_batch_size,
        max_parallel=config.max_parallel_builds,
        rollout_cap=config.rollout_max_building,
    )


# ---------------------------------------------------------------------------- reservation


def test_reservations_take_up_to_k_and_never_pass_the_target(template_app):
    configure(master_target=TARGET, build_batch_size=5, max_parallel_builds=10)
    template = find_master_template(db.session)

    first = reserve(template)
    assert isinstance(first, Reservation) and len(first.campaign_ids) == 5  # K
    assert (first.level, first.remaining, first.pool_in_flight) == (0, 7, 1)
    assert statuses() == {"building": 5}
    second = reserve(template)
    assert isinstance(second, Reservation) and len(second.campaign_ids) == 5
    third = reserve(template)
    assert isinstance(third, Reservation) and len(third.campaign_ids) == 2  # what is left
    assert third.pool_in_flight == 3 and third.remaining == 0
    # Reserved rows count: nothing is left to reserve, whatever the builders.
    assert reserve(template) == FULL
    assert pool_level(db.session, "master", template.template_version) == TARGET

    for reservation in (first, second, third):
        built = build_reserved(db.session, template, reservation)
        assert len(built) == len(reservation.campaign_ids)
    assert statuses() == {"ready": TARGET}
    assert reserve(template) == FULL
    for campaign_id in first.campaign_ids[:1] + second.campaign_ids[-1:]:
        assert verify_campaign(db.session, campaign_id).ok
    # One build, one set of events carrying its id and size.
    events = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "replenished"))
    batches = {e.detail["build_id"]: e.detail["batch"] for e in events}
    assert sorted(batches.values()) == [2, 5, 5]


def test_max_parallel_builds_caps_builds_of_a_pool_not_campaigns(template_app):
    configure(master_target=TARGET, build_batch_size=2, max_parallel_builds=2)
    template = find_master_template(db.session)
    first, second = reserve(template), reserve(template)
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    assert len(first.campaign_ids) == len(second.campaign_ids) == 2
    assert reserve(template) == BUSY  # two builds in flight: the cap
    build_reserved(db.session, template, first)
    third = reserve(template)  # one finished: room for one more
    assert isinstance(third, Reservation) and third.pool_in_flight == 2


def test_a_dead_builders_slot_stops_counting_and_is_reaped(template_app):
    from portal.services.pool.cleanup import reap_stuck_builds

    configure(master_target=3, build_batch_size=3, max_parallel_builds=1)
    template = find_master_template(db.session)
    dead = reserve(template, target=3)
    assert isinstance(dead, Reservation) and len(dead.campaign_ids) == 3
    assert reserve(template, target=3) == FULL  # its rows hold the pool's places ...
    # ... until the build timeout has passed with no sign of the builder: it died.
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id.in_(dead.campaign_ids))
        .values(pool_created_at=utcnow() - timedelta(minutes=11))
    )
    db.session.commit()
    report = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert len(report.built) == 3 and report.skipped is None
    reaped = reap_stuck_builds(db.session, older_than=timedelta(minutes=10))
    assert set(reaped) == set(dead.campaign_ids)
    failures = db.session.scalars(
        sa.select(PoolEvent).where(PoolEvent.kind == "replenish_failed")
    ).all()
    assert len(failures) == 1 and failures[0].detail["reaped"] is True  # one dead build
    assert statuses() == {"ready": 3, "failed": 3}


def test_paused_refills_build_nothing(template_app):
    configure(master_target=2, refills_enabled=0)
    report = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert (report.skipped, report.built) == ("paused", [])
    assert statuses() == {}
    configure(refills_enabled=1)
    assert len(replenish_pool(db.session, get_redis(), settings_of(template_app)).built) == 2


# ---------------------------------------------------------------------------- many workers


@contextmanager
def workers(app: Flask, count: int) -> Iterator[list[EmbeddedWorker]]:
    """`count` RQ workers on the seeding queue, each in a thread with its own app context
    (so its own database session), until the block ends."""
    connection = get_redis(app)
    stop = threading.Event()
    started: list[EmbeddedWorker] = []

    def run(worker: EmbeddedWorker) -> None:
        with app.app_context():
            while not stop.is_set():
                if not worker.work(burst=True, logging_level="WARNING"):
                    stop.wait(0.02)

    threads = []
    for index in range(count):
        worker = EmbeddedWorker(
            [Queue("seeding", connection=connection)],
            connection=connection,
            name=f"refill-test-{index}-{uuid.uuid4().hex[:6]}",
        )
        worker.register_birth()  # counted as a builder from the start
        started.append(worker)
        threads.append(threading.Thread(target=run, args=(worker,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield started
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        for worker in started:
            worker.retire()


def level_watcher(app: Flask, version: int, stop: threading.Event, seen: list[int]) -> None:
    """Sample the pool's level (ready + fresh builds) while the refills run."""
    with app.app_context():
        while not stop.is_set():
            seen.append(pool_level(db.session, "master", version))
            db.session.rollback()
            stop.wait(0.01)


@pytest.mark.parametrize(
    "max_parallel",
    [
        pytest.param(10, id="cap-above-workers"),
        pytest.param(2, id="cap-2", marks=pytest.mark.postgres),
    ],
)
def test_ten_concurrent_refill_triggers_on_four_workers_never_exceed_the_target(
    template_app, max_parallel
):
    configure(master_target=TARGET, build_batch_size=1, max_parallel_builds=max_parallel)
    version = find_master_template(db.session).template_version
    since = utcnow()
    queue = Queue("seeding", connection=get_redis(template_app))
    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=level_watcher, args=(template_app, version, stop, seen))
    with workers(template_app, 4):
        watcher.start()
        barrier = threading.Barrier(10)

        def trigger(index: int) -> None:
            # Ten triggers from ten places at once (claims on several hosts, the monitor, the
            # schedule, an admin): each its own job, as if none had seen the others.
            barrier.wait(timeout=30)
            queue.enqueue(JobPath.REPLENISH, "master", None, job_id=f"trigger-{index}")

        triggers = [threading.Thread(target=trigger, args=(i,)) for i in range(10)]
        for thread in triggers:
            thread.start()
        for thread in triggers:
            thread.join(timeout=60)

        def settled() -> bool:
            db.session.rollback()
            return (
                queue.count == 0
                and queue.started_job_registry.count == 0
                and "building" not in statuses()
            )

        deadline = utcnow() + timedelta(minutes=5)
        calm = 0
        while calm < 3:  # settled three looks in a row: no job between two queues
            assert utcnow() < deadline, statuses()
            calm = calm + 1 if settled() else 0
            stop.wait(0.1)
    stop.set()
    watcher.join(timeout=30)

    assert queue.failed_job_registry.count == 0
    db.session.expire_all()
    assert statuses() == {"ready": TARGET}  # nothing removes campaigns: an overfill would show
    assert seen and max(seen) <= TARGET
    timeline = build_timeline(db.session, since)
    assert timeline["builds"] == timeline["campaigns"] == TARGET
    expected = min(4, max_parallel)
    if db.engine.dialect.name == "postgresql":
        assert timeline["max_in_flight"] == expected, timeline
    else:  # one writer at a time: reserved builds overlap, their transactions do not
        assert 1 <= timeline["max_in_flight"] <= expected, timeline
