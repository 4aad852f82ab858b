"""Pool jobs: `CampaignPoolReplenishJob` refills one pool (or all of them)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from jobs.context import app_context, report_progress

log = logging.getLogger("jobs.pool")

PUBLISH_INTERVAL_S = 1.0


def _is_helper() -> bool:
    """A helper refill (queued by another refill for an idle worker, `...-h<n>`), not one a
    claim, the monitor or an admin asked for."""
    from rq import get_current_job

    job = get_current_job()
    return job is not None and job.id.rsplit("-", 1)[-1].startswith("h")


def replenish_pool_job(pool_type: str = "master", user_id: str | None = None) -> dict[str, Any]:
    """CampaignPoolReplenishJob: refill `pool_type` (a gamemaster's pool with `user_id`), or
    every pool with pool_type="all". Any number of these run at once (helpers the service
    queues for idle workers, duplicates that slip through): builders reserve their campaigns
    before building them, so together they never overfill a pool (docs/pool.md, "Refills")."""
    from portal.appcontext import db_session
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.payload import publish_pool_payload
    from portal.services.pool.replenish import replenish_all, replenish_pool

    with app_context() as app:
        settings = app.config["SETTINGS"]

        last: dict[str, float | bool] = {"published": 0.0, "pending": False}

        def publish(*, force: bool = False) -> None:
            """Tell the dashboards the pool changed, at most once a PUBLISH_INTERVAL_S (the
            payload costs ~20 ms of queries and builds may finish many times a second); never
            fails the refill."""
            now = time.monotonic()
            if not force and now - last["published"] < PUBLISH_INTERVAL_S:
                last["pending"] = True
                return
            last.update(published=now, pending=False)
            publish_pool_payload(app, db_session(), settings, get_redis(app))

        def progress(done: int, total: int) -> None:
            report_progress(pool_type=pool_type, built=done, missing=total)
            publish()

        if not _is_helper():  # the assignment that queued this refill changed the pool
            publish(force=True)
        if pool_type == "all":
            reports = replenish_all(
                db_session(), get_redis(app), settings, progress=progress, fan_out=True
            )
        else:
            owner = uuid.UUID(user_id) if user_id else None
            reports = [
                replenish_pool(
                    db_session(),
                    get_redis(app),
                    settings,
                    pool_type,
                    owner,
                    progress=progress,
                    fan_out=True,
                )
            ]
        if last["pending"]:
            publish(force=True)  # the last builds, held back by the interval
        result = {"reports": [report.as_dict() for report in reports]}
        log.info("jobs.replenish.done", extra=result)
        return result
