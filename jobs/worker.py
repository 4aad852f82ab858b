"""The embedded worker: RQ jobs run by a thread inside the web process (the `make run` default).

Without REDIS_URL the queue is an in-process fakeredis that no other process can reach, so the
web process must run its own jobs. RQ's normal `Worker` forks a work horse per job and installs
signal handlers, neither of which works from a thread; `SimpleWorker` runs jobs in the calling
thread, and `TimerDeathPenalty` enforces job timeouts with a timer instead of SIGALRM (signals
can only be handled on the main thread). The timer raises the timeout in the job's thread between
Python bytecodes, so it interrupts a job's Python code but not a single long call into C (one
slow SQL statement, a blocking socket read): those need their own timeouts.

The thread loops `work(burst=True, with_scheduler=True)`: a burst drains the queues and returns,
which lets the loop notice a stop request between jobs, and in burst mode RQ runs the scheduler
inline (moving due scheduled jobs and retries onto the queues) instead of in a child process that
could not see the in-process fakeredis.

In production, workers are separate processes instead (see `jobs/__init__.py`), preferably
with `AppWorker`, which builds the application once per worker rather than once per job:

    rq worker --with-scheduler --worker-class jobs.worker.AppWorker \\
        --url "$REDIS_URL" seeding default
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker, Worker
from rq.timeouts import TimerDeathPenalty

from jobs.context import current_embedded_app, process_app, set_embedded_app
from jobs.schedule import run_due_jobs
from portal.services.queue import QUEUE_NAMES

log = logging.getLogger("jobs.worker")

IDLE_SLEEP_SECONDS = 0.25
REDIS_RETRY_MAX_S = 5.0


class EmbeddedWorker(SimpleWorker):
    """A `SimpleWorker` that can live in a non-main thread for the life of the web process.

    Each burst would normally register the worker's birth and death and open a pub/sub thread
    for remote commands. Here the worker registers once, when the thread starts, and once more
    as dead when it stops, so `Worker.all()` (and the health check built on it) sees one steady
    worker rather than one that blinks in and out between bursts. Remote commands are not
    subscribed to: nothing outside this process can reach an in-process fakeredis anyway, and the
    thread is stopped through its `threading.Event`.
    """

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registered = False
        self._retiring = False

    def _install_signal_handlers(self) -> None:
        """Signals belong to the main thread (the web server); the thread is stopped by an Event."""

    def register_birth(self) -> None:
        if self._registered:
            self.heartbeat()
            return
        super().register_birth()
        self._registered = True

    def register_death(self) -> None:
        if not self._retiring:
            return
        super().register_death()
        self._registered = False

    def subscribe(self) -> None:
        """No pub/sub thread per burst (see the class docstring)."""

    def unsubscribe(self) -> None:
        """Nothing was subscribed."""

    def retire(self) -> None:
        """Register the worker's death, once, when the thread stops."""
        if self._registered:
            self._retiring = True
            self.register_death()


class AppWorker(Worker):
    """RQ's forking worker, with the application built once in the worker process, and one that
    outlives a Redis outage.

    The default worker forks a work horse per job, and the horse would import and configure the
    whole application again for every job (most of a second, longer than a batch seeding).
    Building it before the first fork lets every horse inherit it. A horse must not use the
    database connections of its parent (two processes on one socket corrupt the protocol), so it
    drops the inherited pool without closing the parent's connections and opens its own.

    RQ retries Redis while a worker is idle, but a Redis error while it watches a job's horse
    ends the whole worker ("found an unhandled exception, quitting"), so a Redis restart during
    a refill stopped refills until someone restarted the workers (tests/test_faults_queue.py).
    This worker lets the horse end, waits for Redis and goes on; and when Redis comes back
    without its data, it registers itself again so that /health and the monitor see it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = process_app()

    def main_work_horse(self, job: Any, queue: Any) -> None:
        from portal.extensions import db

        with self.app.app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)

    def execute_job(self, job: Any, queue: Any) -> None:
        try:
            super().execute_job(job, queue)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning(
                "worker.redis_lost_during_job",
                extra={"worker": self.name, "job_id": job.id, "error": str(exc)[:200]},
            )
            if self._horse_pid:  # still running: it ends on its own (its job timeout bounds it)
                self.wait_for_horse()
                self._horse_pid = 0
            self._wait_for_redis()

    def _wait_for_redis(self) -> None:
        """Block until Redis answers again (or a shutdown is requested), backing off to 5 s."""
        delay = 0.5
        while not self._stop_requested:
            try:
                self.connection.ping()
            except (RedisConnectionError, RedisTimeoutError):
                time.sleep(delay)
                delay = min(delay * 2, REDIS_RETRY_MAX_S)
                continue
            log.info("worker.redis_back", extra={"worker": self.name})
            return

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self.connection.sismember(self.redis_workers_keys, self.key):
            # Redis lost the registration (restarted without persistence): a heartbeat alone
            # only recreates a bare hash that no one lists, so register the birth again.
            log.warning("worker.registered_again", extra={"worker": self.name})
            self.connection.delete(self.key)
            self.register_birth()


def _run(app: Flask, worker: EmbeddedWorker, stop: threading.Event) -> None:
    with app.app_context():
        log.info(
            "worker.embedded_started", extra={"worker": worker.name, "queues": worker.queue_names()}
        )
        try:
            while not stop.is_set():
                try:
                    worked = worker.work(burst=True, with_scheduler=True, logging_level="WARNING")
                except Exception:  # keep the thread alive: the next burst retries
                    log.exception("worker.burst_failed", extra={"worker": worker.name})
                    worked = False
                run_due_jobs(app)  # the embedded scheduler (jobs.schedule); never raises
                if not worked:
                    stop.wait(IDLE_SLEEP_SECONDS)
        finally:
            try:
                worker.retire()
            except Exception:
                log.exception("worker.retire_failed", extra={"worker": worker.name})
            log.info("worker.embedded_stopped", extra={"worker": worker.name})


class EmbeddedWorkerThread(threading.Thread):
    """The daemon thread running an `EmbeddedWorker`; `stop()` asks it to finish and waits."""

    def __init__(self, app: Flask, worker: EmbeddedWorker) -> None:
        self.stop_event = threading.Event()
        self.worker = worker
        self.app = app
        super().__init__(
            target=_run, args=(app, worker, self.stop_event), name="embedded-rq-worker", daemon=True
        )

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop after the job in progress (if any); True when the thread has ended."""
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            return False
        if current_embedded_app() is self.app:
            set_embedded_app(None)
        return True


def start_embedded_worker(
    app: Flask, queues: Sequence[str] = ("seeding", "default")
) -> EmbeddedWorkerThread:
    """Start a daemon thread that runs the jobs of `queues` on `app`'s Redis connection.

    The app is also declared as the one jobs in this process use (`jobs.context`), so a job
    sees the web process's database and fakeredis. Returns the (started) thread; call
    `.stop()` on it, or let it die with the process (it is a daemon)."""
    unknown = [q for q in queues if q not in QUEUE_NAMES]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; queues are {', '.join(QUEUE_NAMES)}")
    connection = app.extensions["redis"]
    worker = EmbeddedWorker(list(queues), connection=connection)
    set_embedded_app(app)
    thread = EmbeddedWorkerThread(app, worker)
    thread.start()
    return thread
