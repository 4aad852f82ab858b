"""`GET /metrics`: the Prometheus exposition, for a scraper holding METRICS_TOKEN.

Never public: without METRICS_TOKEN configured the endpoint does not exist (404), and with it
every request must carry `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise). What the
figures are and where they come from: portal.services.monitoring.prometheus and
docs/operations.md ("Metrics").
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from portal.appcontext import current_flask_app, db_session
from portal.extensions import csrf
from portal.services.monitoring.prometheus import (
    app_collector,
    render_metrics,
    scrape_authorized,
)

bp = Blueprint("metrics", __name__)
csrf.exempt(bp)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    token = current_app.config["SETTINGS"].metrics_token
    if token is None:
        abort(404)
    if not scrape_authorized(request.headers.get("Authorization"), token):
        return Response(
            "a bearer token (METRICS_TOKEN) is required\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    body = render_metrics(app_collector(current_flask_app(), db_session()))
    # The classic text format (0.0.4): every scraper reads it, and our names need nothing newer.
    return Response(
        body, content_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"}
    )
