"""Usage analytics for the portal's analytics page: when campaigns are asked for, how often the
pool had one, how long they waited, what sharing images saves, and what pool size the observed
demand calls for.

The dashboard answers "is the pool healthy now"; this page answers "is it the right size, and
what does it cost": the questions behind a resize. Like the dashboard's figures everything is
aggregated by the database over `pool_events` (GROUP BY hour of day and weekday with the
dialect-neutral expressions of `sql_time`, histogram bins as a CASE), so the page stays cheap
with a long history; the recommendation reuses the demand model that sizes the pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, ImageAttachment, ImageBlob, PoolEvent, utcnow
from portal.services.infra.percentiles import percentile_rows
from portal.services.infra.sql_time import day_of_week, hour_of_day
from portal.services.pool.config import load_pool_config
from portal.services.pool.demand import demand_events, estimate_demand, lead_time, poisson_quantile
from portal.services.pool.events import CLAIM_KINDS, PoolEventKind

PERIODS_DAYS = (7, 28, 90)
DEFAULT_PERIOD_DAYS = 28
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# (label, upper bound in seconds) of the time-in-pool histogram; the last bin is open.
TIME_IN_POOL_BINS: tuple[tuple[str, float | None], ...] = (
    ("< 1 min", 60),
    ("1-10 min", 600),
    ("10-60 min", 3600),
    ("1-6 h", 6 * 3600),
    ("6-24 h", 24 * 3600),
    ("1-7 d", 7 * 24 * 3600),
    ("> 7 d", None),
)


class PeriodError(ValueError):
    """An unknown analytics period; the message lists the known ones."""


def parse_period(raw: str | None) -> int:
    """Days of the analytics period for `raw` (None/"" mean the default)."""
    if not raw:
        return DEFAULT_PERIOD_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days not in PERIODS_DAYS:
        known = ", ".join(str(d) for d in PERIODS_DAYS)
        raise PeriodError(f"unknown period {raw!r}; use one of {known} (days)")
    return days


def _claims_by(
    session: Session, key: sa.ColumnElement[int], since: datetime, size: int
) -> dict[str, list[int]]:
    """Pool hits and fallbacks per value 0..size-1 of `key` (hour of day, weekday ...), and the
    master pool's demand (its hits + fallbacks: what the demand model counts)."""
    hits, fallbacks, master = [0] * size, [0] * size, [0] * size
    # The key is NULL for a timestamp the database cannot read (SQLite's strftime).
    rows: Iterable[sa.Row[int | None, str, str | None, int]] = session.execute(
        sa.select(key.label("k"), PoolEvent.kind, PoolEvent.pool_type, sa.func.count())
        .where(PoolEvent.kind.in_(CLAIM_KINDS), PoolEvent.created_at >= since)
        .group_by("k", PoolEvent.kind, PoolEvent.pool_type)
    )
    for value, kind, pool_type, count in rows:
        if value is None or not 0 <= int(value) < size:
            continue
        (hits if kind == PoolEventKind.ASSIGNED else fallbacks)[int(value)] += count
        if kind == PoolEventKind.FALLBACK or pool_type == "master":
            master[int(value)] += count
    return {"pool_hits": hits, "fallbacks": fallbacks, "master_demand": master}


def claims_by_hour(session: Session, since: datetime) -> dict[str, list[int]]:
    """Pool hits and fallbacks per UTC hour of the day (index 0 = 00:00-00:59)."""
    return _claims_by(session, hour_of_day(session, PoolEvent.created_at), since, 24)


def claims_by_weekday(session: Session, since: datetime) -> dict[str, list[int]]:
    """Pool hits and fallbacks per UTC weekday, Monday first (the databases count from
    Sunday; shifted here so the chart reads like a calendar week)."""
    by_sunday = _claims_by(session, day_of_week(session, PoolEvent.created_at), since, 7)
    return {name: values[1:] + values[:1] for name, values in by_sunday.items()}


def hit_rate(session: Session, since: datetime) -> dict[str, Any]:
    """Claims served by each pool against those seeded in the request."""
    counts = {
        (kind, pool_type): count
        for kind, pool_type, count in session.execute(
            sa.select(PoolEvent.kind, PoolEvent.pool_type, sa.func.count())
            .where(PoolEvent.kind.in_(CLAIM_KINDS), PoolEvent.created_at >= since)
            .group_by(PoolEvent.kind, PoolEvent.pool_type)
        )
    }
    master = counts.get((PoolEventKind.ASSIGNED, "master"), 0)
    user = counts.get((PoolEventKind.ASSIGNED, "user"), 0)
    fallbacks = sum(n for (kind, _), n in counts.items() if kind == PoolEventKind.FALLBACK)
    total = master + user + fallbacks
    return {
        "total": total,
        "master_pool": master,
        "user_pool": user,
        "fallbacks": fallbacks,
        "hit_rate": round((master + user) / total, 4) if total else None,
    }


def time_in_pool(session: Session, since: datetime) -> dict[str, Any]:
    """How long handed-out campaigns had waited in the pool: a histogram and percentiles."""
    age = PoolEvent.detail["pool_age_s"].as_float()
    conditions = [(age < upper, index) for index, (_, upper) in enumerate(TIME_IN_POOL_BINS[:-1])]
    bin_of = sa.case(*conditions, else_=len(TIME_IN_POOL_BINS) - 1).label("bin")
    assigned = (
        PoolEvent.kind == PoolEventKind.ASSIGNED,
        PoolEvent.created_at >= since,
        age.is_not(None),
    )
    counts = [0] * len(TIME_IN_POOL_BINS)
    for index, count in session.execute(
        sa.select(bin_of, sa.func.count()).where(*assigned).group_by("bin")
    ):
        counts[int(index)] = count
    inner = sa.select(PoolEvent.pool_type.label("t"), age.label("s")).where(*assigned)
    by_pool = {
        row.k: {
            "count": row.n,
            "avg_s": round(float(row.avg), 1),
            "p50_s": round(float(row.p50), 1) if row.p50 is not None else None,
            "p95_s": round(float(row.p95), 1) if row.p95 is not None else None,
            "max_s": round(float(row.max), 1),
        }
        for row in session.execute(percentile_rows(inner, "t", "s"))
    }
    labels = [label for label, _ in TIME_IN_POOL_BINS]
    return {"labels": labels, "counts": counts, "by_pool": by_pool}


def storage_saved(session: Session) -> dict[str, Any]:
    """What sharing image files saves: every attachment beyond the first on a blob would have
    been a copied file (an ImageKit upload and its bytes) without sharing."""
    uses = (
        sa.select(ImageAttachment.blob_id.label("blob_id"), sa.func.count().label("n"))
        .group_by(ImageAttachment.blob_id)
        .subquery()
    )
    blobs, stored, attachments, extra, saved = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(ImageBlob.byte_size), 0),
            sa.func.coalesce(sa.func.sum(uses.c.n), 0),
            sa.func.coalesce(sa.func.sum(uses.c.n - 1), 0),
            sa.func.coalesce(sa.func.sum((uses.c.n - 1) * ImageBlob.byte_size), 0),
        ).join(uses, uses.c.blob_id == ImageBlob.id)
    ).one()
    campaigns = session.scalar(
        sa.select(sa.func.count()).where(
            Campaign.is_master_template.is_(False), Campaign.seeded_at.is_not(None)
        )
    )
    return {
        "blobs_stored": int(blobs),
        "bytes_stored": int(stored),
        "attachments": int(attachments),
        "blobs_not_duplicated": int(extra),
        "bytes_not_duplicated": int(saved),
        "seeded_campaigns": int(campaigns or 0),
    }


def hourly_recommendation(
    session: Session,
    settings: Settings,
    by_hour: dict[str, list[int]],
    since: datetime,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """The master target the demand model would set in each hour of the day, from that hour's
    mean claim rate over the period (`by_hour`, from `claims_by_hour`) and the observed lead
    time."""
    config = load_pool_config(session, settings)
    first = session.scalar(
        sa.select(sa.func.min(PoolEvent.created_at)).where(
            demand_events(), PoolEvent.created_at >= since
        )
    )
    observed_days = max(1.0, (now - first).total_seconds() / 86400) if first else float(days)
    observed_days = min(float(days), observed_days)
    lead_s, _ = lead_time(session, now, since)
    targets = []
    for hour in range(24):
        rate = by_hour["master_demand"][hour] / (observed_days * 60)
        raw = poisson_quantile(rate * lead_s / 60, config.demand_service_level / 100) + 1
        targets.append(min(config.demand_max, max(config.demand_min, raw)))
    return {"targets": targets, "lead_time_s": round(lead_s, 1), "days": round(observed_days, 2)}


def analytics(
    session: Session,
    settings: Settings,
    days: int = DEFAULT_PERIOD_DAYS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `/admin/api/analytics` payload: everything the analytics page shows."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    config = load_pool_config(session, settings)
    estimate = estimate_demand(session, config, now)
    by_hour = claims_by_hour(session, since)
    return {
        "generated_at": now.isoformat(),
        "days": days,
        "hours": [f"{h:02d}" for h in range(24)],
        "weekdays": list(WEEKDAYS),
        "by_hour": by_hour,
        "by_weekday": claims_by_weekday(session, since),
        "hit_rate": hit_rate(session, since),
        "time_in_pool": time_in_pool(session, since),
        "storage": storage_saved(session),
        "recommendation": {
            "now": estimate.as_dict(),
            "by_hour": hourly_recommendation(session, settings, by_hour, since, days, now),
            "configured_target": config.target_for("master"),
            "demand_sizing": bool(config.demand_sizing),
        },
    }
