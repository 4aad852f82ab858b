"""PoolMonitorJob: one monitor pass (portal.services.monitoring.monitor), then a `pool_update` push.

Scheduled every minute (jobs.schedule); `flask --app app pool monitor` runs the same pass."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from jobs.context import app_context

log = logging.getLogger("jobs.monitor")


def monitor_job() -> dict[str, Any]:
    """Run one monitor pass in this job's app; return its report."""
    from portal.appcontext import db_session
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.alerts import AlertNotifier
    from portal.services.monitoring.health import workers_required
    from portal.services.monitoring.monitor import run_monitor
    from portal.services.monitoring.payload import publish_pool_payload

    with app_context() as app:
        settings = app.config["SETTINGS"]
        redis_client = get_redis(app)
        report = run_monitor(
            db_session(),
            redis_client,
            settings,
            notifier=AlertNotifier.from_settings(settings),
            check_workers=workers_required(app),
            cooldown=timedelta(minutes=settings.alert_cooldown_minutes),
        )
        if report.skipped is None:
            publish_pool_payload(app, db_session(), settings, redis_client)
        result = report.as_dict()
        log.info("jobs.monitor.done", extra={"skipped": report.skipped, "alerts": report.alerts})
        return result
