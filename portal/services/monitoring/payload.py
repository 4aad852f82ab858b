"""The pool payload: what `/admin/api/pool` answers, `pool_update` pushes to the dashboards and
`pool status` prints, built in one place, and the one helper that builds it and pushes it.

The payload is the pool's own status (`pool.status`: levels, targets, assignment figures) plus
what the dashboard's cards show beyond it: an `ops` block (refills in flight, seeding time over
24 h, active alerts, RQ workers and jobs), the master pool's effective target (`demand`) and
the rebuild after a template version change (`rollout`). Pushing lives here and not in `live`
so that `live` stays a publisher that knows nothing of what it carries; jobs and the portal
call `publish_pool_payload` after they changed the pool.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, utcnow
from portal.services.infra.percentiles import rounded
from portal.services.monitoring.alerts import active_alerts
from portal.services.monitoring.live import publish_pool_update
from portal.services.pool.config import load_pool_config
from portal.services.pool.demand import effective_target
from portal.services.pool.events import PoolEventKind
from portal.services.pool.rollout_status import rollout_status
from portal.services.pool.status import pool_status

log = logging.getLogger("portal.monitoring")


def throttled_since(session: Session, since: datetime) -> int:
    """Creates refused by the per-user creation limit since `since`."""
    return (
        session.scalar(
            sa.select(sa.func.count()).where(
                PoolEvent.kind == PoolEventKind.THROTTLED, PoolEvent.created_at >= since
            )
        )
        or 0
    )


def seeding_summary(session: Session, since: datetime) -> dict[str, Any]:
    """Successful pool builds since `since`: how many and how long they took on average."""
    count, avg = session.execute(
        sa.select(sa.func.count(), sa.func.avg(PoolEvent.duration_ms)).where(
            PoolEvent.kind == PoolEventKind.REPLENISHED, PoolEvent.created_at >= since
        )
    ).one()
    failed = session.scalar(
        sa.select(sa.func.count()).where(
            PoolEvent.kind == PoolEventKind.REPLENISH_FAILED, PoolEvent.created_at >= since
        )
    )
    return {"built": count or 0, "failed": failed or 0, "avg_ms": rounded(avg, 1)}


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
    `rollout` block (template version changes and their rebuild, `rollout_status`). The pool
    configuration is read once for all of it."""
    config = load_pool_config(session, settings)
    payload = pool_status(session, settings, config=config)
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
        "throttled_24h": throttled_since(session, since),
    }
    target = effective_target(session, settings, "master", config=config)
    payload["demand"] = {"master": target.as_dict()}
    payload["rollout"] = rollout_status(session, payload)
    return payload


def publish_pool_payload(
    target: Flask | Settings,
    session: Session,
    settings: Settings,
    redis_client: redis.Redis | None = None,
) -> bool:
    """Build the payload now and push it as `pool_update` to every admin dashboard
    (`live.publish_pool_update`; `target` is the app, or the settings of a process without
    one). False when it could not be built (logged, the session rolled back) or sent.

    Never raises: the job or request that changed the pool succeeded, and a dashboard that
    misses one update gets the next one."""
    try:
        payload = admin_pool_payload(session, settings, redis_client)
    except Exception:
        session.rollback()
        log.exception("pool_update.payload_failed")
        return False
    return publish_pool_update(target, payload)
