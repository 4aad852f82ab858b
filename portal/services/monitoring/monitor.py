"""The pool monitor: one pass reads the pool, fixes what it can, records and alerts.

A pass (PoolMonitorJob, every minute; `flask --app app pool monitor` on demand):

1. reaps builds stuck in `building` past their timeout (their worker died);
   notices an edit of the master template in place and bumps its version, which retires the
   old pool campaigns (portal.services.template.versions, portal.services.pool.rollout);
2. reads pool levels and asks for a refill when a pool is below its target; once a rollout
   has rebuilt every pool, asks for the clean-up that deletes the retired campaigns
   (`rollout.advance_rollout`);
3. looks for live RQ workers (heartbeats in Redis);
4. records a metrics snapshot (`pool_events` kind "snapshot") for the charts;
5. reconciles the alert incidents (pool low/empty, refills failing, workers missing), which
   notifies by email/Slack only when an incident opens, gets worse or recovers.

Passes are serialized by a Redis lock, so an overlapping run (a slow pass, a second scheduler,
the CLI) skips instead of double-alerting; when Redis itself is down the pass still runs
unlocked, because an alert sent twice beats one never sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from redis.exceptions import LockError, RedisError
from rq import Worker
from rq.defaults import DEFAULT_WORKER_TTL
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, utcnow
from portal.services.infra.queue import QUEUE_NAMES, enqueue_replenish
from portal.services.monitoring.alerts import AlertNotifier, Condition, reconcile
from portal.services.pool.cleanup import reap_after, reap_stuck_builds
from portal.services.pool.config import load_pool_config
from portal.services.pool.demand import effective_target
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.replenish import build_timeout, gamemasters_needing_pools, pool_level
from portal.services.pool.rollout import advance_rollout
from portal.services.pool.status import pool_status
from portal.services.template.versions import bump_if_edited

log = logging.getLogger("portal.monitor")

LOCK_NAME = "campaign-pool:monitor"
LOCK_TIMEOUT_S = 300
# An idle RQ worker heartbeats every worker_ttl - 15 s and its registration expires after
# worker_ttl + 60 s: a worker is alive while its heartbeat is younger than that.
WORKER_SEEN_WITHIN = timedelta(seconds=DEFAULT_WORKER_TTL + 60)
# No worker for this long (by the snapshots of earlier passes) before the alert fires, so a
# worker restart during a deploy does not page anyone.
WORKERS_MISSING_GRACE = timedelta(minutes=2)
REFILL_FAILING_AFTER = 3


@dataclass
class MonitorReport:
    ran_at: str
    skipped: str | None = None
    reaped: list[str] = field(default_factory=list)
    master: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, Any] | None = None
    refill_needed: bool = False
    refill_job: str | None = None
    template_change: dict[str, Any] | None = None
    rollout: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at,
            "skipped": self.skipped,
            "reaped": self.reaped,
            "master": self.master,
            "user": self.user,
            "workers": self.workers,
            "refill_needed": self.refill_needed,
            "refill_job": self.refill_job,
            "template_change": self.template_change,
            "rollout": self.rollout,
            "alerts": self.alerts,
            "duration_ms": self.duration_ms,
        }


def workers_seen(redis_client: redis.Redis, now: datetime | None = None) -> dict[str, Any]:
    """RQ workers whose heartbeat is recent: {"count", "queues": {queue: count}, "names"}.

    Raises RedisError when Redis cannot be reached (the caller decides what that means)."""
    now = now or utcnow()
    alive = [
        worker
        for worker in Worker.all(connection=redis_client)
        if worker.last_heartbeat is not None and now - worker.last_heartbeat <= WORKER_SEEN_WITHIN
    ]
    queues = dict.fromkeys(QUEUE_NAMES, 0)
    for worker in alive:
        for name in worker.queue_names():
            if name in queues:
                queues[name] += 1
    return {"count": len(alive), "queues": queues, "names": sorted(w.name for w in alive)}


def _workers_recently_seen(session: Session, since: datetime) -> bool:
    """Did any earlier pass since `since` see a worker? (From the snapshots it recorded.)"""
    details = session.scalars(
        sa.select(PoolEvent.detail)
        .where(PoolEvent.kind == PoolEventKind.SNAPSHOT, PoolEvent.created_at >= since)
        .order_by(PoolEvent.created_at.desc())
        .limit(20)
    )
    return any((d or {}).get("workers") for d in details)


def _last_build_error(session: Session) -> str | None:
    detail = session.scalar(
        sa.select(PoolEvent.detail)
        .where(PoolEvent.kind == PoolEventKind.REPLENISH_FAILED, PoolEvent.pool_type == "master")
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(1)
    )
    return (detail or {}).get("error")


def pool_conditions(
    session: Session, status: dict[str, Any], failure_budget: int
) -> list[Condition]:
    """The pool-low/empty and refills-failing conditions of the master pool."""
    master = status["pools"]["master"]
    ready, target, watermark = master["ready"], master["target"], master["low_watermark"]
    has_template = status["template_version"] is not None
    low = has_template and target > 0 and (ready < watermark or ready == 0)
    empty = low and ready == 0
    data = {"ready": ready, "building": master["building"], "target": target}
    data["low_watermark"] = watermark
    conditions = [
        Condition(
            incident="pool_low:master",
            active=low,
            severity="critical" if empty else "warning",
            pool_type="master",
            title="master pool empty" if empty else "master pool low",
            message=(
                f"The master pool has {ready} ready campaign(s), below its low watermark of "
                f"{watermark} (target {target}). "
                + (
                    "New campaigns are seeded on request (slower) until it refills."
                    if empty
                    else "It empties if refills cannot keep up."
                )
            ),
            recovered_message=(
                f"The master pool is back to {ready} ready campaign(s) "
                f"(low watermark {watermark}, target {target})."
            ),
            data=data,
        )
    ]
    failures = master["consecutive_failures"]
    threshold = min(REFILL_FAILING_AFTER, failure_budget)
    failing = has_template and failures >= threshold
    conditions.append(
        Condition(
            incident="refill_failing:master",
            active=failing,
            severity="critical" if master["halted"] else "warning",
            pool_type="master",
            title="master pool refills failing",
            message=(
                f"The last {failures} build(s) of master pool campaigns failed"
                + (
                    f"; refills have stopped (failure budget {failure_budget})."
                    if master["halted"]
                    else "."
                )
                + (f" Last error: {_last_build_error(session)}" if failing else "")
            ),
            recovered_message="Master pool campaigns build successfully again.",
            data={"consecutive_failures": failures, "failure_budget": failure_budget},
        )
    )
    return conditions


def workers_condition(
    workers: dict[str, Any] | None, error: str | None, seen_lately: bool
) -> Condition:
    """No worker (or none on some queue) seen: jobs, refills included, are not running."""
    if workers is None:
        active, severity = not seen_lately, "critical"
        message = f"No RQ worker can be seen: Redis is unreachable ({error})."
    elif workers["count"] == 0:
        active, severity = not seen_lately, "critical"
        message = (
            "No RQ worker has been seen for "
            f"{int(WORKERS_MISSING_GRACE.total_seconds() // 60)} minutes: refills, clean-up "
            "and queued campaigns are not running."
        )
    else:
        missing = [q for q, n in workers["queues"].items() if n == 0]
        active, severity = bool(missing), "warning"
        message = f"No RQ worker listens on queue(s) {', '.join(missing)}."
    return Condition(
        incident="workers_missing",
        active=active,
        severity=severity,
        title="workers missing",
        message=message,
        recovered_message=(
            f"RQ workers are back: {workers['count'] if workers else 0} seen recently."
        ),
        data={"workers": workers["count"] if workers else None, "error": error},
    )


def run_monitor(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    *,
    notifier: AlertNotifier | None = None,
    now: datetime | None = None,
    check_workers: bool = True,
    enqueue_refills: bool = True,
    cooldown: timedelta | None = None,
) -> MonitorReport:
    """One monitor pass (see the module docstring). `check_workers` is false where workers
    cannot be seen (a CLI process on the embedded in-process queue)."""
    started = time.perf_counter()
    now = now or utcnow()
    notifier = notifier or AlertNotifier.from_settings(settings)
    if cooldown is None:
        cooldown = timedelta(minutes=settings.alert_cooldown_minutes)
    report = MonitorReport(ran_at=now.isoformat())
    lock = redis_client.lock(LOCK_NAME, timeout=LOCK_TIMEOUT_S)
    try:
        if not lock.acquire(blocking=False):
            report.skipped = "locked"
            log.info("pool.monitor.skipped", extra={"reason": "locked"})
            return report
    except RedisError as exc:
        log.warning("pool.monitor.unlocked", extra={"error": str(exc)[:200]})
        lock = None
    try:
        _pass(
            session,
            redis_client,
            settings,
            notifier,
            now,
            report,
            cooldown,
            check_workers,
            enqueue_refills,
        )
    finally:
        if lock is not None:
            try:
                lock.release()
            except (LockError, RedisError):
                log.warning("pool.monitor.lock_lost")
    report.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.info(
        "pool.monitor.done",
        extra={
            "master_ready": report.master.get("ready"),
            "workers": (report.workers or {}).get("count"),
            "reaped": len(report.reaped),
            "refill_job": report.refill_job,
            "alerts": [a["incident"] + ":" + a["state"] for a in report.alerts],
            "duration_ms": report.duration_ms,
        },
    )
    return report


def _pass(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    notifier: AlertNotifier,
    now: datetime,
    report: MonitorReport,
    cooldown: timedelta,
    check_workers: bool,
    enqueue_refills: bool,
) -> None:
    # Read once: everything below sizes, judges and reports the pools by the same settings.
    config = load_pool_config(session, settings)
    reaped = reap_stuck_builds(session, now=now, older_than=reap_after(settings))
    report.reaped = [str(i) for i in reaped]
    change = bump_if_edited(session)
    report.template_change = change.as_dict() if change else None
    status = pool_status(session, settings, config=config)
    master, user = status["pools"]["master"], status["pools"]["user"]
    report.master = {k: master[k] for k in ("ready", "building", "failed", "stale", "target")}
    report.master["low_watermark"] = master["low_watermark"]
    report.user = {k: user[k] for k in ("ready", "building", "failed", "target", "gamemasters")}
    version = status["template_version"]
    if version is not None:
        target = effective_target(session, settings, "master", config=config, now=now).value
        level = pool_level(session, "master", version, stale_after=build_timeout(settings))
        short = level < target
        short = short or bool(gamemasters_needing_pools(session, config, version))
        report.refill_needed = short
        if short and enqueue_refills:
            report.refill_job = enqueue_replenish(redis_client, "all")
        step = advance_rollout(
            session, redis_client, version, pools_full=not short, enqueue=enqueue_refills
        )
        report.rollout = step.as_dict()

    conditions = pool_conditions(session, status, config.failure_budget)
    if check_workers:
        error = None
        try:
            report.workers = workers_seen(redis_client, now)
        except RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        seen_lately = _workers_recently_seen(session, now - WORKERS_MISSING_GRACE)
        conditions.append(workers_condition(report.workers, error, seen_lately))

    record_pool_event(
        session,
        PoolEventKind.SNAPSHOT,
        pool_type="master",
        detail={
            "template_version": version,
            "master": report.master,
            "user": report.user,
            "workers": (report.workers or {}).get("count"),
        },
        created_at=now,
    )
    session.commit()
    transitions = reconcile(session, conditions, notifier, now=now, cooldown=cooldown)
    session.commit()
    report.alerts = [t.as_dict() for t in transitions]
