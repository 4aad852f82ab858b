"""The periodic jobs, defined once, and the two things that enqueue them.

* Production: one `rq cron` process reads `jobs/cron_config.py`, which registers these jobs
  (`rq cron jobs.cron_config --url "$REDIS_URL"`; run exactly one).
* Embedded (`make run`, or `serve --with-worker`): the worker thread calls `run_due_jobs`
  between bursts (docs/architecture.md: the embedded runtime runs everything in one process).

`run_due_jobs` may be called by any number of processes at any rate: each job's id is its
name plus the number of the interval it belongs to (`periodic-monitor-29012345`), enqueued with
`unique=True`, and a finished job is kept for two intervals, so every interval gets one run no
matter how many ticks overlap. A job still queued after its interval expires (`ttl`), so a
stopped worker does not come back to a backlog of stale monitor runs.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask
from redis.exceptions import RedisError

from portal.services.infra.queue import JobPath

log = logging.getLogger("jobs.schedule")

# How often the embedded thread looks at the schedule (each look is one Redis call per job).
TICK_SECONDS = 5.0
FAILURE_TTL = 6 * 3600


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: str  # dotted path, imported by the worker
    queue: str
    interval_s: int
    timeout_s: int
    args: tuple[Any, ...] = ()
    description: str = ""

    def job_id(self, now: float) -> str:
        return f"periodic-{self.name}-{int(now // self.interval_s)}"

    def function(self) -> Callable[..., Any]:
        module, _, name = self.func.rpartition(".")
        function: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return function


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "monitor",
        JobPath.MONITOR,
        "default",
        interval_s=60,
        timeout_s=240,
        description="pool levels, refills, reaping, snapshot, alerts, pool_update",
    ),
    PeriodicJob(
        "replenish",
        JobPath.REPLENISH,
        "seeding",
        interval_s=300,
        timeout_s=600,
        args=("all",),
        description="refill every pool to its target (the scheduled refill trigger)",
    ),
    PeriodicJob(
        "cleanup",
        JobPath.CLEANUP,
        "default",
        interval_s=3600,
        timeout_s=1800,
        description="delete failed, retired and abandoned pool campaigns; purge unused blobs",
    ),
)


def enqueue_due(
    redis_client: redis.Redis, now: float | None = None, jobs: Sequence[PeriodicJob] = PERIODIC_JOBS
) -> list[str]:
    """Enqueue each job not yet enqueued for the current interval; return the new job ids."""
    from rq import Queue
    from rq.exceptions import DuplicateJobError

    now = time.time() if now is None else now
    enqueued: list[str] = []
    for job in jobs:
        job_id = job.job_id(now)
        try:
            Queue(job.queue, connection=redis_client).enqueue(
                job.func,
                *job.args,
                job_id=job_id,
                unique=True,
                job_timeout=job.timeout_s,
                ttl=job.interval_s,
                result_ttl=2 * job.interval_s,
                failure_ttl=max(FAILURE_TTL, 2 * job.interval_s),
                description=f"periodic {job.name}: {job.description}",
            )
        except DuplicateJobError:
            continue
        enqueued.append(job_id)
    if enqueued:
        log.info("schedule.enqueued", extra={"jobs": enqueued})
    return enqueued


_next_tick: dict[int, float] = {}
_tick_lock = threading.Lock()


def run_due_jobs(app: Flask, now: float | None = None) -> list[str]:
    """The embedded scheduler tick: enqueue due periodic jobs on the app's Redis.

    Cheap to call in a tight loop (it looks at most every TICK_SECONDS unless `now` is given)
    and never raises: a scheduler hiccup must not stop the worker thread."""
    if now is None:
        with _tick_lock:
            current = time.monotonic()
            if current < _next_tick.get(id(app), 0.0):
                return []
            _next_tick[id(app)] = current + TICK_SECONDS
    try:
        return enqueue_due(app.extensions["redis"], now)
    except (RedisError, OSError) as exc:
        log.warning("schedule.enqueue_failed", extra={"error": str(exc)[:200]})
    except Exception:
        log.exception("schedule.enqueue_failed")
    return []
