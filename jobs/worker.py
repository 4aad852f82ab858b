"""The production worker: `AppWorker`, RQ's forking worker with the application built once.

Workers are separate processes, any number on any host, started with the environment of the web
process (see `jobs/__init__.py`)::

    rq worker --with-scheduler --worker-class jobs.worker.AppWorker \\
        --url "$REDIS_URL" seeding default

The embedded default (`make run`) runs jobs in a thread of the web process instead
(`jobs.embedded`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker

from jobs.context import process_app

log = logging.getLogger("jobs.worker")

REDIS_RETRY_MAX_S = 5.0


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
    a refill stopped refills until someone restarted the workers (tests/e2e/test_faults_queue.py).
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
