"""JSON for the dashboard's scripts: `/admin/api/pool` (the cards) and `/admin/api/metrics`
(the charts). Guarded like every admin view; anonymous callers get a JSON 401."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue

from portal.appcontext import db_session
from portal.blueprints.admin.blueprint import bp
from portal.blueprints.errors import ApiError
from portal.services.infra.queue import get_redis
from portal.services.monitoring.analytics import PeriodError, analytics, parse_period
from portal.services.monitoring.charts import metrics
from portal.services.monitoring.payload import admin_pool_payload
from portal.services.monitoring.windows import WindowError


@bp.get("/api/pool")
def api_pool() -> ResponseReturnValue:
    """The pool payload (also what Socket.IO `pool_update` carries)."""
    settings = current_app.config["SETTINGS"]
    return jsonify(admin_pool_payload(db_session(), settings, get_redis()))


@bp.get("/api/metrics")
def api_metrics() -> ResponseReturnValue:
    """Chart series over `?window=1h|24h|7d` (default 24h)."""
    try:
        data = metrics(db_session(), current_app.config["SETTINGS"], request.args.get("window"))
    except WindowError as exc:
        raise ApiError(400, str(exc), {"window": [str(exc)]}) from None
    return jsonify(data)


@bp.get("/api/analytics")
def api_analytics() -> ResponseReturnValue:
    """Usage analytics over `?days=7|28|90` (default 28): what /admin/analytics charts."""
    try:
        days = parse_period(request.args.get("days"))
    except PeriodError as exc:
        raise ApiError(400, str(exc), {"days": [str(exc)]}) from None
    return jsonify(analytics(db_session(), current_app.config["SETTINGS"], days))
