"""The refill job, run by a real RQ worker: it refills and tells the dashboards as it goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from rq import Queue

from jobs.embedded import EmbeddedWorker
from portal.extensions import db, socketio
from portal.services.infra.queue import enqueue_replenish, get_redis
from portal.services.pool.config import set_pool_setting
from tests.conftest import app_on
from tests.support.auth import AuthActions


@pytest.fixture
def app(databases, template_golden: str) -> Iterator[Flask]:
    """The template database without REDIS_URL: Socket.IO's test client cannot use a message
    queue, and the embedded route (the worker inside the web process) is what this exercises."""
    yield from app_on(databases, template_golden, "")


def run_queued_jobs(app: Flask) -> None:
    connection = get_redis(app)
    worker = EmbeddedWorker([Queue("seeding", connection=connection)], connection=connection)
    worker.work(burst=True)


def test_refill_job_builds_to_target_and_publishes_each_step(app, client, auth: AuthActions):
    auth.create_user()
    auth.login()
    sio = socketio.test_client(app, namespace="/admin", flask_test_client=client)
    assert sio.is_connected("/admin")
    sio.get_received("/admin")  # the payload sent on connect
    set_pool_setting(db.session, "master_target", 2)
    set_pool_setting(db.session, "build_batch_size", 1)  # one build per campaign: two steps
    db.session.commit()

    assert enqueue_replenish(get_redis(app), "master") == "replenish-master-all"
    # A second trigger while the first is queued adds nothing (one refill per pool).
    assert enqueue_replenish(get_redis(app), "master") is None
    run_queued_jobs(app)

    updates = [m["args"][0] for m in sio.get_received("/admin") if m["name"] == "pool_update"]
    levels = [u["pools"]["master"]["ready"] for u in updates]
    # At the start, then after builds at most once a second, and always after the last one.
    assert levels[0] == 0 and levels[-1] == 2 and levels == sorted(levels)
    # The finished job does not linger: the next trigger is accepted again.
    assert enqueue_replenish(get_redis(app), "master") == "replenish-master-all"
