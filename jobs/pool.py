"""Pool jobs: `CampaignPoolReplenishJob` refills one pool (or all of them)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from jobs.context import app_context, report_progress

log = logging.getLogger("jobs.pool")


def replenish_pool_job(pool_type: str = "master", user_id: str | None = None) -> dict[str, Any]:
    """CampaignPoolReplenishJob: refill `pool_type` (a gamemaster's pool with `user_id`), or
    every pool with pool_type="all". Any number of these run at once (helpers the service
    queues for idle workers, duplicates that slip through): builders reserve their campaigns
    before building them, so together they never overfill a pool (docs/pool.md, "Refills")."""
    from portal.extensions import db
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.live import pool_payload, publish_pool_update
    from portal.services.pool.replenish import replenish_all, replenish_pool

    with app_context() as app:
        settings = app.config["SETTINGS"]

        def publish() -> None:
            """Tell the dashboards the pool changed; never let that fail the refill."""
            try:
                publish_pool_update(app, pool_payload(db.session, settings, get_redis(app)))
            except Exception:
                db.session.rollback()
                log.exception("jobs.replenish.publish_failed")

        def progress(done: int, total: int) -> None:
            report_progress(pool_type=pool_type, built=done, missing=total)
            publish()

        publish()  # the assignment that triggered this refill already changed the pool
        if pool_type == "all":
            reports = replenish_all(
                db.session, get_redis(app), settings, progress=progress, fan_out=True
            )
        else:
            owner = uuid.UUID(user_id) if user_id else None
            reports = [
                replenish_pool(
                    db.session,
                    get_redis(app),
                    settings,
                    pool_type,
                    owner,
                    progress=progress,
                    fan_out=True,
                )
            ]
        result = {"reports": [report.as_dict() for report in reports]}
        log.info("jobs.replenish.done", extra=result)
        return result
