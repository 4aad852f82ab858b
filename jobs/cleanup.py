"""The clean-up job: delete failed, retired and abandoned pool campaigns with their content,
and purge blobs nothing uses any more (portal.services.pool.cleanup). Scheduled hourly
(jobs.schedule); also `flask --app app pool cleanup` and the portal's quick action."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from jobs.context import app_context

log = logging.getLogger("jobs.cleanup")


def cleanup_job(max_ready_age_days: int | None = None) -> dict[str, Any]:
    """Run the clean-up in this job's app; return what it removed."""
    from portal.appcontext import db_session
    from portal.services.images.backend import get_image_store
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.payload import publish_pool_payload
    from portal.services.pool.cleanup import MAX_READY_AGE, cleanup_pool

    with app_context() as app:
        settings = app.config["SETTINGS"]
        redis_client = get_redis(app)
        max_age = (
            MAX_READY_AGE if max_ready_age_days is None else timedelta(days=max_ready_age_days)
        )
        report = cleanup_pool(
            db_session(),
            settings,
            redis_client,
            store=get_image_store(app),
            max_ready_age=max_age,
        )
        if report.campaigns_deleted or report.reaped:
            publish_pool_payload(app, db_session(), settings, redis_client)
        result = report.as_dict()
        log.info(
            "jobs.cleanup.done",
            extra={k: v for k, v in result.items() if isinstance(v, int)},
        )
        return result
