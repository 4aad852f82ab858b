"""The Redis connection, the RQ queues, and the one place jobs are enqueued.

A real Redis with REDIS_URL, an in-process fakeredis without it (the embedded default, where a
worker thread in the web process runs the jobs). Services ask for work through the `enqueue_*`
functions below and name jobs only through `JobPath`, so a job can be renamed or moved in one
place; the job functions themselves live in `jobs/` and are imported by the worker, never here.
"""

from __future__ import annotations

import logging
import time
import uuid
from enum import StrEnum

import fakeredis
import redis
from flask import Flask, current_app
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from portal.config import Settings

log = logging.getLogger("portal.queue")

QUEUE_NAMES = ("seeding", "default")

# A refill job's timeout: the whole refill (and the default build timeout, POOL_BUILD_TIMEOUT).
REFILL_JOB_TIMEOUT_S = 600
SEED_JOB_TIMEOUT_S = 600
CLEANUP_JOB_TIMEOUT_S = 1800
# A failed job keeps its id (and so blocks re-enqueueing the same work) this long: a back-off.
FAILED_JOB_BACKOFF_S = 300


class JobPath(StrEnum):
    """The dotted paths of the job functions a worker imports (see `jobs/`)."""

    REPLENISH = "jobs.pool.replenish_pool_job"
    CLEANUP = "jobs.cleanup.cleanup_job"
    MONITOR = "jobs.monitor.monitor_job"
    SEED = "jobs.seeding.seed_campaign_job"


def connect_redis(settings: Settings) -> redis.Redis:
    """A Redis client for the settings: real when REDIS_URL is set, in-process otherwise."""
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def init_queue(app: Flask) -> None:
    app.extensions["redis"] = connect_redis(app.config["SETTINGS"])


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis connection (shared by RQ, locks and the Socket.IO message queue)."""
    client: redis.Redis = (app or current_app).extensions["redis"]
    return client


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUE_NAMES)}")
    return Queue(name, connection=get_redis(app))


def refill_job_id(pool_type: str, user_id: uuid.UUID | None) -> str:
    """One queued refill per pool at a time: the job id names the pool."""
    return f"replenish-{pool_type}-{user_id or 'all'}"


def _enqueue_refill(queue: Queue, job_id: str, pool_type: str, user_id: uuid.UUID | None) -> bool:
    """Queue one refill job under `job_id` unless a job of that id is queued or running.
    True when queued now. Raises RedisError (the callers decide what an outage means)."""
    # In a burst every claim asks for the refill that is already queued: one EXISTS answers
    # that (the job hash lives while the job is queued or running, and result_ttl=0 removes
    # it at the end), where building and refusing a unique job costs about a millisecond of
    # CPU. `unique=True` below still settles the race.
    if queue.connection.exists(Job.key_for(job_id)):
        return False
    try:
        queue.enqueue(
            JobPath.REPLENISH,
            pool_type,
            str(user_id) if user_id else None,
            job_id=job_id,
            unique=True,
            job_timeout=REFILL_JOB_TIMEOUT_S,
            # The job id is the per-pool guard: a finished job must not linger and block the
            # next trigger, a failed one blocks re-enqueueing for a short back-off.
            result_ttl=0,
            failure_ttl=FAILED_JOB_BACKOFF_S,
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_replenish(
    redis_client: redis.Redis, pool_type: str = "master", user_id: uuid.UUID | None = None
) -> str | None:
    """Ask a worker to refill a pool; one queued refill per pool at a time (a unique job id).

    Returns the job id, or None when a refill is already queued or Redis is unreachable (the
    scheduled refill catches up; a request must never fail because the queue is down)."""
    job_id = refill_job_id(pool_type, user_id)
    started = time.perf_counter()
    try:
        if not _enqueue_refill(
            Queue("seeding", connection=redis_client), job_id, pool_type, user_id
        ):
            return None
    except RedisError as exc:
        log.warning(
            "pool.replenish.enqueue_failed",
            extra={"pool_type": pool_type, "error": str(exc)[:200]},
        )
        return None
    log.debug(
        "pool.replenish.enqueued",
        extra={"job_id": job_id, "ms": round((time.perf_counter() - started) * 1000, 2)},
    )
    return job_id


def enqueue_refill_helpers(
    redis_client: redis.Redis, pool_type: str, user_id: uuid.UUID | None, count: int
) -> list[str]:
    """Queue up to `count` helper refills of one pool, so that idle workers build beside the
    refill that asked (docs/pool.md, "Refills"). Helpers have ids of their own
    (`replenish-master-all-h1` ...), unique like the refill's, so asking again while they
    are queued or running adds nothing. Returns the ids queued now; none when Redis is
    unreachable (the refill that asked builds on by itself)."""
    queued: list[str] = []
    queue = Queue("seeding", connection=redis_client)
    for index in range(1, count + 1):
        job_id = f"{refill_job_id(pool_type, user_id)}-h{index}"
        try:
            if not _enqueue_refill(queue, job_id, pool_type, user_id):
                continue
        except RedisError as exc:
            log.warning(
                "pool.replenish.helpers_failed",
                extra={"pool_type": pool_type, "error": str(exc)[:200]},
            )
            break
        queued.append(job_id)
    if queued:
        log.info("pool.replenish.helpers", extra={"pool_type": pool_type, "jobs": queued})
    return queued


def seeding_workers(redis_client: redis.Redis) -> int:
    """Workers registered on the `seeding` queue (refills run there): how many builders a
    pool's refill can share its deficit with. At least 1 (the one asking); 1 when Redis
    cannot say."""
    from rq import Worker

    try:
        return max(1, Worker.count(queue=Queue("seeding", connection=redis_client)))
    except RedisError:
        return 1


def enqueue_cleanup(redis_client: redis.Redis) -> str | None:
    """Queue a clean-up for a worker (one at a time); None when one is queued already or
    Redis is unreachable."""
    job_id = "cleanup-now"
    try:
        Queue("default", connection=redis_client).enqueue(
            JobPath.CLEANUP,
            job_id=job_id,
            unique=True,
            job_timeout=CLEANUP_JOB_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=FAILED_JOB_BACKOFF_S,
        )
    except DuplicateJobError:
        return None
    except RedisError as exc:
        log.warning("pool.cleanup.enqueue_failed", extra={"error": str(exc)[:200]})
        return None
    return job_id


def enqueue_seeding(redis_client: redis.Redis, campaign_id: uuid.UUID) -> str | None:
    """Queue the seeding of an empty, committed campaign; None when Redis is unreachable (the
    caller then seeds in the request instead)."""
    job_id = f"seed-{campaign_id}"
    try:
        Queue("seeding", connection=redis_client).enqueue(
            JobPath.SEED, str(campaign_id), job_id=job_id, job_timeout=SEED_JOB_TIMEOUT_S
        )
    except RedisError as exc:
        log.warning(
            "campaign.seed_enqueue_failed",
            extra={"campaign_id": str(campaign_id), "error": str(exc)[:200]},
        )
        return None
    return job_id
