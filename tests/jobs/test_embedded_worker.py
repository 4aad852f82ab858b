"""The embedded worker thread: on `make run` there is no worker process, so the web process
runs its own RQ jobs on the in-process fakeredis. These tests enqueue real jobs through RQ and
watch the thread run them against the web app's own database, keep going after failures and
timeouts, and stop cleanly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from rq import Queue, Worker
from rq.job import Job, JobStatus

from jobs.context import app_context, current_job_app
from jobs.embedded import EmbeddedWorker, EmbeddedWorkerThread, start_embedded_worker
from portal.runtime import current_embedded_app, set_embedded_app
from tests.conftest import app_on
from tests.support import PROJECT_ROOT
from tests.support.databases import TestDatabases

# --- job functions (imported by RQ by their dotted path) ------------------------------------


def record_event(note: str) -> str:
    """Write a row through the job's app and say which database that app uses."""
    from portal.extensions import db
    from portal.models import PoolEvent

    with app_context() as app:
        db.session.add(PoolEvent(kind="action", detail={"note": note}))
        db.session.commit()
        return app.config["SQLALCHEMY_DATABASE_URI"]


def where_am_i() -> list[object]:
    """Which process built the job's app, which process runs the job, and on which database."""
    import os

    from jobs.context import process_app_pid

    with app_context() as app:
        return [process_app_pid(), os.getpid(), app.config["SQLALCHEMY_DATABASE_URI"]]


def explode() -> None:
    raise RuntimeError("job failed on purpose")


def sleep_for(seconds: float) -> str:
    """Sleeps in short steps: the timer death penalty raises its exception in the worker thread
    between bytecodes, so it interrupts Python code, not one long call into C."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "woke"


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def embedded_app(databases: TestDatabases, migrated_golden: str) -> Iterator[Flask]:
    """An app on a fresh database with the in-process fakeredis (REDIS_URL unset)."""
    yield from app_on(databases, migrated_golden, "")


@pytest.fixture
def worker_thread(embedded_app: Flask) -> Iterator[EmbeddedWorkerThread]:
    thread = start_embedded_worker(embedded_app)
    yield thread
    thread.stop(timeout=10)
    set_embedded_app(None)


def wait_for(job: Job, statuses: set[JobStatus], timeout: float = 15.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} still {job.get_status(refresh=True)} after {timeout}s")


def events(note: str) -> int:
    from portal.extensions import db
    from portal.models import PoolEvent

    db.session.expire_all()
    return sum(1 for e in db.session.scalars(sa.select(PoolEvent)) if e.detail == {"note": note})


# --- tests ----------------------------------------------------------------------------------


def test_embedded_queue_is_fakeredis(embedded_app: Flask) -> None:
    import fakeredis

    assert embedded_app.config["SETTINGS"].embedded_queue
    assert isinstance(embedded_app.extensions["redis"], fakeredis.FakeRedis)


def test_worker_runs_an_enqueued_job_on_the_web_apps_database(
    embedded_app: Flask, worker_thread: EmbeddedWorkerThread
) -> None:
    queue = Queue("seeding", connection=embedded_app.extensions["redis"])
    job = queue.enqueue(record_event, "from-the-queue")
    assert wait_for(job, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
    assert job.return_value() == embedded_app.config["SQLALCHEMY_DATABASE_URI"]
    assert events("from-the-queue") == 1


def test_worker_drains_both_queues(
    embedded_app: Flask, worker_thread: EmbeddedWorkerThread
) -> None:
    redis = embedded_app.extensions["redis"]
    jobs = [Queue(name, connection=redis).enqueue(record_event, name) for name in QUEUES]
    for job in jobs:
        assert wait_for(job, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
    assert [events(name) for name in QUEUES] == [1, 1]


QUEUES = ("seeding", "default")


def test_a_failing_job_is_recorded_and_the_worker_goes_on(
    embedded_app: Flask, worker_thread: EmbeddedWorkerThread
) -> None:
    queue = Queue("default", connection=embedded_app.extensions["redis"])
    bad = queue.enqueue(explode)
    assert wait_for(bad, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FAILED
    assert "job failed on purpose" in (bad.latest_result().exc_string or "")
    good = queue.enqueue(record_event, "after-failure")
    assert wait_for(good, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
    assert worker_thread.is_alive()


def test_job_timeout_is_enforced_without_signals(
    embedded_app: Flask, worker_thread: EmbeddedWorkerThread
) -> None:
    """SIGALRM cannot reach a non-main thread; the timer-based death penalty can."""
    queue = Queue("default", connection=embedded_app.extensions["redis"])
    started = time.monotonic()
    slow = queue.enqueue(sleep_for, 30, job_timeout=1)
    assert wait_for(slow, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FAILED
    assert time.monotonic() - started < 10
    assert "JobTimeoutException" in (slow.latest_result().exc_string or "")
    after = queue.enqueue(sleep_for, 0)
    assert wait_for(after, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED


def test_scheduled_jobs_are_moved_onto_the_queue(
    embedded_app: Flask, worker_thread: EmbeddedWorkerThread
) -> None:
    """`with_scheduler=True` in burst mode: retries and `enqueue_in` work without a scheduler
    process."""
    from datetime import timedelta

    queue = Queue("default", connection=embedded_app.extensions["redis"])
    job = queue.enqueue_in(timedelta(seconds=1), record_event, "scheduled")
    assert job.get_status() == JobStatus.SCHEDULED
    assert wait_for(job, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
    assert events("scheduled") == 1


def test_worker_is_registered_once_and_deregistered_on_stop(embedded_app: Flask) -> None:
    redis = embedded_app.extensions["redis"]
    thread = start_embedded_worker(embedded_app)
    try:
        assert current_embedded_app() is embedded_app
        time.sleep(0.8)  # several idle bursts
        workers = Worker.all(connection=redis)
        assert [w.name for w in workers] == [thread.worker.name]
        time.sleep(0.6)
        assert [w.name for w in Worker.all(connection=redis)] == [thread.worker.name]
    finally:
        assert thread.stop(timeout=10) is True
    assert not thread.is_alive()
    assert Worker.all(connection=redis) == []
    assert current_embedded_app() is None


def test_stop_waits_for_the_job_in_progress(embedded_app: Flask) -> None:
    thread = start_embedded_worker(embedded_app)
    queue = Queue("default", connection=embedded_app.extensions["redis"])
    job = queue.enqueue(sleep_for, 1)
    wait_for(job, {JobStatus.STARTED, JobStatus.FINISHED})
    assert thread.stop(timeout=10) is True
    assert job.get_status(refresh=True) == JobStatus.FINISHED


def test_worker_class_is_thread_safe_by_construction() -> None:
    from rq.timeouts import TimerDeathPenalty

    assert EmbeddedWorker.death_penalty_class is TimerDeathPenalty


def test_unknown_queue_is_refused(embedded_app: Flask) -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        start_embedded_worker(embedded_app, queues=("seeding", "nope"))


def test_job_context_prefers_the_running_app(embedded_app: Flask) -> None:
    """Inside an app context a job uses that app; in the embedded worker's thread, the
    embedded app; neither builds a second app from the environment."""
    assert current_job_app() is embedded_app
    with app_context() as app:
        assert app is embedded_app
        assert current_app._get_current_object() is embedded_app

    seen: list[Flask] = []
    set_embedded_app(embedded_app)
    try:
        import threading

        thread = threading.Thread(target=lambda: seen.append(current_job_app()))
        thread.start()
        thread.join()
    finally:
        set_embedded_app(None)
    assert seen == [embedded_app]


@pytest.fixture
def redis_app(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    if not redis_url:
        pytest.skip("needs a real Redis: set TEST_REDIS_URL")
    yield from app_on(databases, migrated_golden, redis_url)


@pytest.mark.redis
def test_with_worker_runs_jobs_on_a_real_redis(redis_app: Flask) -> None:
    """`serve --with-worker` on REDIS_URL: the same thread against a real Redis server."""
    assert not redis_app.config["SETTINGS"].embedded_queue
    thread = start_embedded_worker(redis_app)
    try:
        queue = Queue("seeding", connection=redis_app.extensions["redis"])
        job = queue.enqueue(record_event, "real-redis")
        assert wait_for(job, {JobStatus.FINISHED, JobStatus.FAILED}) == JobStatus.FINISHED
        assert events("real-redis") == 1
    finally:
        assert thread.stop(timeout=10)
        set_embedded_app(None)


@pytest.mark.redis
def test_a_real_rq_worker_process_builds_its_app_from_the_environment(redis_app: Flask) -> None:
    """Production: `rq worker --with-scheduler --url $REDIS_URL seeding default`, started with
    the web process's environment, runs the same job functions against the same database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings = redis_app.config["SETTINGS"]
    queue = Queue("seeding", connection=redis_app.extensions["redis"])
    job = queue.enqueue(record_event, "rq-worker-process")
    root = PROJECT_ROOT
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key,
    )
    rq = Path(sys.executable).with_name("rq")
    result = subprocess.run(
        [
            str(rq),
            "worker",
            "--burst",
            "--with-scheduler",
            "--url",
            settings.redis_url,
            "seeding",
            "default",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert job.get_status(refresh=True) == JobStatus.FINISHED, result.stderr
    assert job.return_value() == settings.database_url
    assert events("rq-worker-process") == 1


@pytest.mark.redis
def test_app_worker_builds_the_app_once_for_all_its_work_horses(redis_app: Flask) -> None:
    """`--worker-class jobs.worker.AppWorker`: the forked horses inherit one app built by the
    worker process, and still reach the database on connections of their own."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings = redis_app.config["SETTINGS"]
    queue = Queue("default", connection=redis_app.extensions["redis"])
    probes = [queue.enqueue(where_am_i) for _ in range(2)]
    writes = queue.enqueue(record_event, "app-worker")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key,
    )
    rq = Path(sys.executable).with_name("rq")
    command = [str(rq), "worker", "--burst", "--with-scheduler", "--url", settings.redis_url]
    result = subprocess.run(
        [*command, "--worker-class", "jobs.worker.AppWorker", "default"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert writes.get_status(refresh=True) == JobStatus.FINISHED, result.stderr
    assert events("app-worker") == 1
    (built_1, horse_1, db_1), (built_2, horse_2, db_2) = [p.return_value() for p in probes]
    assert built_1 == built_2 is not None  # one app, built by the worker process ...
    assert horse_1 != horse_2 and built_1 not in (horse_1, horse_2)  # ... used by two horses
    assert db_1 == db_2 == settings.database_url
