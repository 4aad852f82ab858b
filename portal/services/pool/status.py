"""Pool levels and assignment metrics: the `/admin/api/pool` payload and `pool status`.

Counts come from one GROUP BY over the partial pool index; assignment figures come from
`pool_events` over a time window. Everything returned is JSON-ready.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, PoolEvent, User, utcnow
from portal.services.campaigns.records import find_master_template
from portal.services.infra.percentiles import percentile
from portal.services.pool.config import PoolConfig, load_pool_config
from portal.services.pool.events import CLAIM_KINDS, PoolEventKind
from portal.services.pool.replenish import consecutive_failures, pool_halted
from portal.services.pool.switches import switch_states

STATUSES = ("building", "ready", "failed", "retired")


def _levels(session: Session, version: int | None) -> dict[str, dict[str, int]]:
    current = Campaign.template_version == version if version is not None else sa.false()
    stmt = (
        sa.select(
            Campaign.pool_type,
            Campaign.pool_status,
            sa.case((current, True), else_=False).label("current"),
            sa.func.count(),
        )
        .where(Campaign.is_pool.is_(True))
        .group_by(Campaign.pool_type, Campaign.pool_status, "current")
    )
    levels = {pt: dict.fromkeys((*STATUSES, "stale"), 0) for pt in ("master", "user")}
    for pool_type, status, is_current, count in session.execute(stmt):
        if pool_type not in levels or status not in levels[pool_type]:
            continue
        if status == "ready" and not is_current:
            levels[pool_type]["stale"] += count
        else:
            levels[pool_type][status] += count
    return levels


def assignment_metrics(session: Session, window: timedelta) -> dict[str, Any]:
    since = utcnow() - window
    rows = session.execute(
        sa.select(PoolEvent.kind, PoolEvent.duration_ms, PoolEvent.detail).where(
            PoolEvent.kind.in_(CLAIM_KINDS), PoolEvent.created_at >= since
        )
    ).all()
    hits = [r for r in rows if r.kind == PoolEventKind.ASSIGNED]
    latencies = [r.duration_ms for r in hits if r.duration_ms is not None]
    ages = [
        float(r.detail["pool_age_s"])
        for r in hits
        if r.detail and r.detail.get("pool_age_s") is not None
    ]
    total = len(rows)
    return {
        "window_s": int(window.total_seconds()),
        "total": total,
        "pool_hits": len(hits),
        "fallbacks": total - len(hits),
        "hit_rate": round(len(hits) / total, 4) if total else None,
        "latency_ms": {
            "avg": round(statistics.fmean(latencies), 3) if latencies else None,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
        },
        "time_in_pool_s": {
            "avg": round(statistics.fmean(ages), 1) if ages else None,
            "p50": percentile(ages, 50),
            "max": round(max(ages), 1) if ages else None,
        },
    }


def build_timeline(
    session: Session, since: datetime, pool_type: str | None = "master"
) -> dict[str, Any]:
    """Pool builds completed since `since`, from their `replenished` events: how many builds
    and campaigns, and the most builds that were in flight at once (reservation to ready,
    `detail.started_at` to the event's time). This is how "W workers keep W builds of one pool
    in flight" is read back from what happened, not from what was planned."""
    stmt = sa.select(PoolEvent.detail, PoolEvent.created_at).where(
        PoolEvent.kind == "replenished", PoolEvent.created_at >= since
    )
    if pool_type is not None:
        stmt = stmt.where(PoolEvent.pool_type == pool_type)
    builds: dict[str, tuple[datetime, datetime, int]] = {}
    campaigns = 0
    for detail, finished in session.execute(stmt):
        campaigns += 1
        detail = detail or {}
        started_raw = detail.get("started_at")
        if not started_raw or not detail.get("build_id"):
            continue
        started = datetime.fromisoformat(started_raw)
        if finished.tzinfo is None:
            started = started.replace(tzinfo=None)
        builds[detail["build_id"]] = (started, finished, int(detail.get("batch", 1)))
    edges = sorted(
        [(start, 1) for start, _, _ in builds.values()]
        + [(end, -1) for _, end, _ in builds.values()]
    )  # at equal times the end (-1) sorts first: touching builds do not overlap
    in_flight = most = 0
    for _, step in edges:
        in_flight += step
        most = max(most, in_flight)
    sizes = [size for _, _, size in builds.values()]
    return {
        "builds": len(builds),
        "campaigns": campaigns,
        "max_in_flight": most,
        "largest_batch": max(sizes) if sizes else 0,
    }


def pool_status(
    session: Session,
    settings: Settings,
    window: timedelta = timedelta(hours=24),
    *,
    config: PoolConfig | None = None,
    with_assignments: bool = True,
) -> dict[str, Any]:
    """Levels, targets and health of every pool plus assignment metrics over `window`.

    `config` is the pool configuration a caller has already read (the monitor pass reads it
    once for everything it calls); read here when not given. `with_assignments=False` leaves
    the assignment metrics out (`"assignments": None`): they read every claim of the window,
    which a frequent reader such as a metrics scrape, with latencies of its own, has no use
    for."""
    template = find_master_template(session)
    version = template.template_version if template else None
    config = config or load_pool_config(session, settings)
    levels = _levels(session, version)
    gamemasters = session.scalar(
        sa.select(sa.func.count()).where(User.gamemaster.is_(True), User.active.is_(True))
    )
    with_ready = session.scalar(
        sa.select(sa.func.count(sa.distinct(Campaign.user_id))).where(
            Campaign.is_pool.is_(True),
            Campaign.pool_type == "user",
            Campaign.pool_status == "ready",
            Campaign.template_version == version,
        )
    )
    master = levels["master"]
    master_failures = consecutive_failures(session, "master", None)
    pools = {
        "master": {
            **master,
            "target": config.target_for("master"),
            "low_watermark": config.low_watermark,
            "low": master["ready"] < config.low_watermark,
            "empty": master["ready"] == 0,
            "consecutive_failures": master_failures,
            "halted": pool_halted(session, "master", None, config.failure_budget),
        },
        "user": {
            **levels["user"],
            "target": config.target_for("user"),
            "gamemasters": gamemasters or 0,
            "gamemasters_with_ready_pool": with_ready or 0,
        },
    }
    return {
        "generated_at": utcnow().isoformat(),
        "template_version": version,
        "config": config.as_dict(),
        "pools": pools,
        "switches": switch_states(session, settings, config),
        "assignments": assignment_metrics(session, window) if with_assignments else None,
    }
