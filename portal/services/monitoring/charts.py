"""The dashboard's chart series (`/admin/api/metrics`): pool level, claim latency, claims and
fallbacks, seeding time by method, each over one window (`windows`).

Everything is aggregated by the database. The portal must stay fast with a long history (the
dashboard in <= 200 ms with 10,000 campaigns and 100,000 pool events, docs/performance.md), so
no query loads a window's worth of `pool_events` rows into Python: counts are GROUP BYs on the
(kind, created_at) index, percentiles use window functions (`infra.percentiles.percentile_rows`)
and return two or three rows per bucket. Time buckets are computed in SQL from the epoch, one
expression per dialect (`infra.sql_time`), so the same code serves `make run` (SQLite) and
production (PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, PoolEvent, utcnow
from portal.services.campaigns.records import find_master_template
from portal.services.infra.percentiles import percentile_rows, rounded
from portal.services.infra.sql_time import epoch_bucket
from portal.services.monitoring.windows import DEFAULT_WINDOW, parse_window, window_buckets
from portal.services.pool.demand import effective_target
from portal.services.pool.events import CLAIM_KINDS, PoolEventKind


def assignments_series(
    session: Session, since: datetime, size: int, buckets: list[int]
) -> dict[str, list[int]]:
    """Pool hits, fallbacks and creates refused by the per-user limit, per bucket."""
    bucket = epoch_bucket(session, PoolEvent.created_at, size).label("b")
    counts: dict[tuple[int, str], int] = {}
    for b, kind, count in session.execute(
        sa.select(bucket, PoolEvent.kind, sa.func.count())
        .where(
            PoolEvent.kind.in_((*CLAIM_KINDS, PoolEventKind.THROTTLED)),
            PoolEvent.created_at >= since,
        )
        .group_by(bucket, PoolEvent.kind)
    ):
        counts[(int(b), kind)] = count
    return {
        "pool_hits": [counts.get((b, PoolEventKind.ASSIGNED), 0) for b in buckets],
        "fallbacks": [counts.get((b, PoolEventKind.FALLBACK), 0) for b in buckets],
        # creates refused by the per-user creation limit (pool.quota)
        "throttled": [counts.get((b, PoolEventKind.THROTTLED), 0) for b in buckets],
    }


def latency_series(
    session: Session, since: datetime, size: int, buckets: list[int]
) -> dict[str, list[float | None]]:
    """Claim latency per bucket: p50, p95, p99 and average (None where nothing was claimed)."""
    inner = sa.select(
        epoch_bucket(session, PoolEvent.created_at, size).label("b"),
        PoolEvent.duration_ms.label("ms"),
    ).where(
        PoolEvent.kind == PoolEventKind.ASSIGNED,
        PoolEvent.created_at >= since,
        PoolEvent.duration_ms.is_not(None),
    )
    by_bucket = {
        int(row.k): row for row in session.execute(percentile_rows(inner, "b", "ms", (50, 95, 99)))
    }

    def pick(name: str) -> list[float | None]:
        return [rounded(getattr(by_bucket[b], name)) if b in by_bucket else None for b in buckets]

    return {"p50": pick("p50"), "p95": pick("p95"), "p99": pick("p99"), "avg": pick("avg")}


def pool_level_series(
    session: Session, since: datetime, size: int, buckets: list[int], current_ready: int
) -> list[int]:
    """Ready campaigns of the master pool at the end of each bucket, reconstructed backwards
    from the current level and the events that changed it (a build adds one; an assignment,
    a retirement or the clean-up of an abandoned ready campaign removes one). Needs no
    periodic snapshots, so the chart is right from the first minute of a fresh installation."""
    bucket = epoch_bucket(session, PoolEvent.created_at, size).label("b")
    delta = sa.case((PoolEvent.kind == PoolEventKind.REPLENISHED, 1), else_=-1)
    level_changes = (
        PoolEventKind.REPLENISHED,
        PoolEventKind.ASSIGNED,
        PoolEventKind.RETIRED,
    )
    changes = {
        int(b): int(d or 0)
        for b, d in session.execute(
            sa.select(bucket, sa.func.sum(delta))
            .where(
                sa.or_(
                    PoolEvent.kind.in_(level_changes),
                    sa.and_(
                        PoolEvent.kind == PoolEventKind.CLEANED,
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
            "avg": rounded(row.avg, 1),
            "p50": rounded(row.p50, 1),
            "p95": rounded(row.p95, 1),
            "max": rounded(row.max, 1),
        }
        for row in session.execute(percentile_rows(inner, "m", "ms"))
    }


def _master_level(session: Session, settings: Settings) -> tuple[int, int]:
    """Ready campaigns of the master pool at the current template version, and the target
    refills bring it to (demand-sized when that is on): the two figures the level chart needs,
    cheaper than the whole pool status."""
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
    now = utcnow()
    span = window_buckets(parse_window(window), now)
    since, size, buckets = span.since, span.size, span.buckets
    current_ready, target = _master_level(session, settings)
    return {
        "window": span.name,
        "bucket_s": size,
        "generated_at": now.isoformat(),
        "labels": span.labels,
        "pool_level": {
            "ready": pool_level_series(session, since, size, buckets, current_ready),
            "target": target,
        },
        "latency_ms": latency_series(session, since, size, buckets),
        "assignments": assignments_series(session, since, size, buckets),
        "seeding_by_method": seeding_by_method(session, since),
    }
