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

In production, workers are separate processes instead (`jobs.worker.AppWorker`, see
`jobs/__init__.py`). This module never builds an application: the thread runs on the app it is
given, which is declared in `portal.runtime` so that jobs and live pushes use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from flask import Flask
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from jobs.schedule import run_due_jobs
from portal.runtime import current_embedded_app, set_embedded_app
from portal.services.infra.queue import QUEUE_NAMES

log = logging.getLogger("jobs.worker")

IDLE_SLEEP_SECONDS = 0.25


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
