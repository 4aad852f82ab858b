"""Figures for the admin portal: summary extras, recent rows and time-bucketed chart series.

Everything here is aggregated by the database. The portal must stay fast with a long history
(the dashboard must answer in <= 200 ms with 10,000 campaigns and 100,000 pool events), so
no query loads a window's worth of `pool_events` rows into Python: counts are GROUP BYs on the
(kind, created_at) index, percentiles use window functions (ROW_NUMBER/COUNT OVER a partition,
which SQLite and PostgreSQL both have) and return two or three rows per bucket, and lists are
LIMITed or paginated. Time buckets are computed in SQL from the epoch, one expression per
dialect, so the same code serves `make run` (SQLite) and production (PostgreSQL).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, PoolEvent, User, utcnow
from portal.services.infra.sql_time import epoch_bucket
from portal.services.pool.demand import effective_target
from portal.services.pool.rollout_status import rollout_status
from portal.services.pool.status import pool_status

log = logging.getLogger("portal.portal_metrics")

# window name -> (length, bucket size in seconds)
WINDOWS: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 5 * 60),
    "24h": (timedelta(hours=24), 60 * 60),
    "7d": (timedelta(days=7), 6 * 60 * 60),
}
DEFAULT_WINDOW = "24h"

# Filters of the pool campaign list. "stale" is a ready campaign of an old template version:
# it will never be handed out, so it is listed apart from the usable ready ones.
LIST_STATUSES = ("ready", "building", "failed", "retired", "assigned", "stale")
LIST_POOL_TYPES = ("master", "user")
PAGE_SIZE = 50

# An alert incident is active until its latest row says it is over.
ALERT_CLEARED_STATES = frozenset({"resolved", "ok", "cleared", "closed"})
ALERT_SCAN_LIMIT = 500


class WindowError(ValueError):
    """An unknown chart window; the message lists the known ones."""


def parse_window(raw: str | None) -> str:
    """The window name for `raw` (None/"" mean the default); WindowError for anything else."""
    if not raw:
        return DEFAULT_WINDOW
    if raw not in WINDOWS:
        raise WindowError(f"unknown window {raw!r}; use one of {', '.join(WINDOWS)}")
    return raw


# -- SQL building blocks -------------------------------------------------------------------


def _rank_at(pct: int, n: Any) -> Any:
    """Nearest-rank position of the `pct` percentile among `n` sorted values: ceil(pct*n/100),
    in integer arithmetic so it is the same on both databases."""
    return (n * pct + 99) // 100


def percentile_rows(
    inner: sa.Select, key: str, value: str, pcts: Sequence[int] = (50, 95)
) -> sa.Select:
    """Per `key` of the subquery `inner`: count, average and nearest-rank percentiles of
    `value`, computed by the database with window functions (no rows shipped to Python)."""
    sub = inner.subquery("v")
    ranked = sa.select(
        sub.c[key].label("k"),
        sub.c[value].label("x"),
        sa.func.row_number().over(partition_by=sub.c[key], order_by=sub.c[value]).label("rn"),
        sa.func.count().over(partition_by=sub.c[key]).label("n"),
    ).subquery("r")
    columns = [
        ranked.c.k,
        ranked.c.n,
        sa.func.avg(ranked.c.x).label("avg"),
        sa.func.max(ranked.c.x).label("max"),
    ]
    for pct in pcts:
        columns.append(
            sa.func.max(
                sa.case((ranked.c.rn == _rank_at(pct, ranked.c.n), ranked.c.x), else_=None)
            ).label(f"p{pct}")
        )
    return sa.select(*columns).group_by(ranked.c.k, ranked.c.n).order_by(ranked.c.k)


def _num(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


# -- dashboard extras ----------------------------------------------------------------------


def seeding_summary(session: Session, since: datetime) -> dict[str, Any]:
    """Successful pool builds since `since`: how many and how long they took on average."""
    count, avg = session.execute(
        sa.select(sa.func.count(), sa.func.avg(PoolEvent.duration_ms)).where(
            PoolEvent.kind == "replenished", PoolEvent.created_at >= since
        )
    ).one()
    failed = session.scalar(
        sa.select(sa.func.count()).where(
            PoolEvent.kind == "replenish_failed", PoolEvent.created_at >= since
        )
    )
    return {"built": count or 0, "failed": failed or 0, "avg_ms": _num(avg, 1)}


def active_alerts(session: Session, limit: int = ALERT_SCAN_LIMIT) -> list[dict[str, Any]]:
    """Alert incidents whose latest `alert` event is not a resolution, newest first.

    Reads the latest `limit` alert rows through the (kind, created_at) index; alert rows are a
    handful per incident, so that covers every incident that could still be open."""
    rows = session.execute(
        sa.select(PoolEvent.id, PoolEvent.pool_type, PoolEvent.detail, PoolEvent.created_at)
        .where(PoolEvent.kind == "alert")
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    seen: set[str] = set()
    active: list[dict[str, Any]] = []
    for row in rows:
        detail = row.detail if isinstance(row.detail, dict) else {}
        incident = str(detail.get("incident") or f"event-{row.id}")
        if incident in seen:
            continue
        seen.add(incident)
        state = str(detail.get("state") or "firing")
        if state.lower() in ALERT_CLEARED_STATES:
            continue
        active.append(
            {
                "incident": incident,
                "state": state,
                "pool_type": row.pool_type,
                "title": str(detail.get("title") or incident),
                "message": str(detail.get("message") or detail.get("summary") or ""),
                "since": row.created_at.isoformat(),
            }
        )
    return active


def queue_figures(redis_client: redis.Redis | None) -> dict[str, Any]:
    """RQ workers alive and seeding jobs queued or running; None values when Redis is down
    (the dashboard shows "unknown" rather than failing)."""
    if redis_client is None:
        return {"workers": None, "jobs_queued": None, "jobs_started": None}
    from rq import Queue, Worker
    from rq.registry import StartedJobRegistry

    try:
        queue = Queue("seeding", connection=redis_client)
        return {
            "workers": Worker.count(connection=redis_client),
            "jobs_queued": queue.count,
            "jobs_started": StartedJobRegistry(queue=queue).count,
        }
    except (RedisError, OSError) as exc:
        log.warning("portal.queue_unreachable", extra={"error": str(exc)[:200]})
        return {"workers": None, "jobs_queued": None, "jobs_started": None}


def admin_pool_payload(
    session: Session, settings: Settings, redis_client: redis.Redis | None = None
) -> dict[str, Any]:
    """The `/admin/api/pool` payload, also what `pool_update` carries on Socket.IO.

    `pool_status` (levels, targets, assignment metrics) plus an `ops` block with what the
    dashboard cards show beyond it: refills in flight, seeding time, alerts, RQ workers; and a
    `rollout` block (template version changes and their rebuild, `rollout_status`)."""
    payload = pool_status(session, settings)
    since = utcnow() - timedelta(hours=24)
    pools = payload["pools"]
    queue = queue_figures(redis_client)
    alerts = active_alerts(session)
    payload["ops"] = {
        "building": pools["master"]["building"] + pools["user"]["building"],
        "jobs_queued": queue["jobs_queued"],
        "jobs_started": queue["jobs_started"],
        "workers": queue["workers"],
        "seeding_24h": seeding_summary(session, since),
        "alerts": alerts[:20],
        "alerts_active": len(alerts),
    }
    payload["demand"] = {"master": effective_target(session, settings, "master").as_dict()}
    payload["rollout"] = rollout_status(session, payload)
    return payload


# -- lists ---------------------------------------------------------------------------------


def recent_assignments(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest pool hits with their campaign: when it was built (pool_created_at), when it
    was handed out (activated_at) and how long it waited in the pool."""
    rows = session.execute(
        sa.select(
            PoolEvent.created_at,
            PoolEvent.pool_type,
            PoolEvent.duration_ms,
            Campaign.id,
            Campaign.name,
            Campaign.pool_created_at,
            Campaign.activated_at,
            User.email,
        )
        .select_from(PoolEvent)
        .outerjoin(Campaign, Campaign.id == PoolEvent.campaign_id)
        .outerjoin(User, User.id == PoolEvent.user_id)
        .where(PoolEvent.kind == "assigned")
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    out = []
    for row in rows:
        in_pool = None
        if row.pool_created_at and row.activated_at:
            in_pool = (row.activated_at - row.pool_created_at).total_seconds()
        out.append(
            {
                "at": row.created_at,
                "pool_type": row.pool_type,
                "latency_ms": row.duration_ms,
                "campaign_id": row.id,
                "name": row.name,
                "owner": row.email,
                "pool_created_at": row.pool_created_at,
                "activated_at": row.activated_at,
                "time_in_pool_s": in_pool,
            }
        )
    return out


def recent_actions(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The latest admin quick actions, as recorded in pool_events (kind "action")."""
    rows = session.execute(
        sa.select(PoolEvent.created_at, PoolEvent.detail)
        .where(PoolEvent.kind == "action")
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {"at": row.created_at, **(row.detail if isinstance(row.detail, dict) else {})}
        for row in rows
    ]


@dataclass(frozen=True)
class CampaignPage:
    rows: list[Campaign]
    total: int
    page: int
    pages: int
    status: str | None
    pool_type: str | None


def pool_campaigns_page(
    session: Session,
    *,
    status: str | None = None,
    pool_type: str | None = None,
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> CampaignPage:
    """One page of pool campaigns (and campaigns that came from the pool), newest first.

    Unknown filter values are ignored rather than refused: they come from a URL an admin may
    have edited, and showing everything is the least surprising answer."""
    status = status if status in LIST_STATUSES else None
    pool_type = pool_type if pool_type in LIST_POOL_TYPES else None
    from portal.services.campaigns.records import find_master_template

    template = find_master_template(session)
    version = template.template_version if template else None
    where: list[Any] = [Campaign.pool_status.is_not(None)]
    if status == "stale":
        where += [Campaign.is_pool.is_(True), Campaign.pool_status == "ready"]
        if version is not None:
            where.append(
                sa.or_(Campaign.template_version.is_(None), Campaign.template_version != version)
            )
    elif status == "ready" and version is not None:
        where += [Campaign.pool_status == "ready", Campaign.template_version == version]
    elif status is not None:
        where.append(Campaign.pool_status == status)
    if pool_type is not None:
        where.append(Campaign.pool_type == pool_type)
    total = session.scalar(sa.select(sa.func.count()).select_from(Campaign).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        sa.select(Campaign)
        .where(*where)
        .order_by(Campaign.pool_created_at.desc().nulls_last(), Campaign.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return CampaignPage(list(rows), total, page, pages, status, pool_type)


# -- chart series --------------------------------------------------------------------------


def _bucket_starts(now: datetime, length: timedelta, size: int) -> list[int]:
    end = int(now.timestamp()) // size * size
    start = int((now - length).timestamp()) // size * size
    return list(range(start, end + 1, size))


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def assignments_series(
    session: Session, since: datetime, size: int, buckets: list[int]
) -> dict[str, list[int]]:
    bucket = epoch_bucket(session, PoolEvent.created_at, size).label("b")
    counts: dict[tuple[int, str], int] = {}
    for b, kind, count in session.execute(
        sa.select(bucket, PoolEvent.kind, sa.func.count())
        .where(PoolEvent.kind.in_(("assigned", "fallback")), PoolEvent.created_at >= since)
        .group_by(bucket, PoolEvent.kind)
    ):
        counts[(int(b), kind)] = count
    return {
        "pool_hits": [counts.get((b, "assigned"), 0) for b in buckets],
        "fallbacks": [counts.get((b, "fallback"), 0) for b in buckets],
    }


def latency_series(
    session: Session, since: datetime, size: int, buckets: list[int]
) -> dict[str, list[float | None]]:
    inner = sa.select(
        epoch_bucket(session, PoolEvent.created_at, size).label("b"),
        PoolEvent.duration_ms.label("ms"),
    ).where(
        PoolEvent.kind == "assigned",
        PoolEvent.created_at >= since,
        PoolEvent.duration_ms.is_not(None),
    )
    by_bucket = {
        int(row.k): row for row in session.execute(percentile_rows(inner, "b", "ms", (50, 95, 99)))
    }

    def pick(name: str) -> list[float | None]:
        return [_num(getattr(by_bucket[b], name)) if b in by_bucket else None for b in buckets]

    return {"p50": pick("p50"), "p95": pick("p95"), "p99": pick("p99"), "avg": pick("avg")}


def pool_level_series(
    session: Session, since: datetime, size: int, buckets: list[int], current_ready: int
) -> list[int]:
    """Ready campaigns of the master pool at the end of each bucket, reconstructed backwards
    from the current level and the events that changed it (a build adds one; an assignment,
    a retirement or the clean-up of an abandoned ready campaign removes one). Needs no
    periodic snapshots, so the chart is right from the first minute of a fresh installation."""
    bucket = epoch_bucket(session, PoolEvent.created_at, size).label("b")
    delta = sa.case((PoolEvent.kind == "replenished", 1), else_=-1)
    changes = {
        int(b): int(d or 0)
        for b, d in session.execute(
            sa.select(bucket, sa.func.sum(delta))
            .where(
                sa.or_(
                    PoolEvent.kind.in_(("replenished", "assigned", "retired")),
                    sa.and_(
                        PoolEvent.kind == "cleaned",
                        PoolEvent.detail["reason"].as_string() == "abandoned",
                    ),
                ),
                PoolEvent.pool_type == "master",
                PoolEvent.created_at >= since,
            )
            .group_by(bucket)
        )
    }
    levels: list[int] = []
    level = current_ready
    for b in reversed(buckets):
        levels.append(max(0, level))
        level -= changes.get(b, 0)
    return list(reversed(levels))


def seeding_by_method(session: Session, since: datetime) -> dict[str, dict[str, Any]]:
    """Seeding duration per method (batch, traditional) for campaigns seeded since `since`."""
    inner = sa.select(
        Campaign.seeding_method.label("m"), Campaign.seeding_duration_ms.label("ms")
    ).where(
        Campaign.seeded_at >= since,
        Campaign.seeding_method.is_not(None),
        Campaign.seeding_duration_ms.is_not(None),
    )
    return {
        row.k: {
            "count": row.n,
            "avg": _num(row.avg, 1),
            "p50": _num(row.p50, 1),
            "p95": _num(row.p95, 1),
            "max": _num(row.max, 1),
        }
        for row in session.execute(percentile_rows(inner, "m", "ms"))
    }


def _master_level(session: Session, settings: Settings) -> tuple[int, int]:
    """Ready campaigns of the master pool at the current template version, and the target
    refills bring it to (demand-sized when that is on): the two figures the level chart needs,
    cheaper than the whole pool status."""
    from portal.services.campaigns.records import find_master_template

    template = find_master_template(session)
    ready = 0
    if template is not None and template.template_version is not None:
        ready = (
            session.scalar(
                sa.select(sa.func.count()).where(
                    Campaign.is_pool.is_(True),
                    Campaign.pool_status == "ready",
                    Campaign.pool_type == "master",
                    Campaign.template_version == template.template_version,
                )
            )
            or 0
        )
    return ready, effective_target(session, settings, "master").value


def metrics(
    session: Session, settings: Settings, window: str | None = DEFAULT_WINDOW
) -> dict[str, Any]:
    """The `/admin/api/metrics` payload: every chart's series over one window."""
    window = parse_window(window)
    length, size = WINDOWS[window]
    now = utcnow()
    since = datetime.fromtimestamp(int((now - length).timestamp()) // size * size, UTC)
    buckets = _bucket_starts(now, length, size)
    current_ready, target = _master_level(session, settings)
    return {
        "window": window,
        "bucket_s": size,
        "generated_at": now.isoformat(),
        "labels": [_iso(b) for b in buckets],
        "pool_level": {
            "ready": pool_level_series(session, since, size, buckets, current_ready),
            "target": target,
        },
        "latency_ms": latency_series(session, since, size, buckets),
        "assignments": assignments_series(session, since, size, buckets),
        "seeding_by_method": seeding_by_method(session, since),
    }
