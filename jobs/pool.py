"""Pool jobs: `CampaignPoolReplenishJob` refills one pool (or all of them)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from jobs.context import app_context, report_progress

log = logging.getLogger("jobs.pool")


def replenish_pool_job(pool_type: str = "master", user_id: str | None = None) -> dict[str, Any]:
    """CampaignPoolReplenishJob: refill `pool_type` (a gamemaster's pool with `user_id`), or
    every pool with pool_type="all". Serialized per pool inside the service, so duplicates of
    this job that slip through are harmless."""
    from portal.appcontext import db_session
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.payload import publish_pool_payload
    from portal.services.pool.replenish import replenish_all, replenish_pool

    with app_context() as app:
        settings = app.config["SETTINGS"]

        def publish() -> None:
            """Tell the dashboards the pool changed; never fails the refill."""
            publish_pool_payload(app, db_session(), settings, get_redis(app))

        def progress(done: int, total: int) -> None:
            report_progress(pool_type=pool_type, built=done, missing=total)
            publish()

        publish()  # the assignment that triggered this refill already changed the pool
        if pool_type == "all":
            reports = replenish_all(db_session(), get_redis(app), settings, progress=progress)
        else:
            owner = uuid.UUID(user_id) if user_id else None
            reports = [
                replenish_pool(
                    db_session(), get_redis(app), settings, pool_type, owner, progress=progress
                )
            ]
        result = {"reports": [report.as_dict() for report in reports]}
        log.info("jobs.replenish.done", extra=result)
        return result
