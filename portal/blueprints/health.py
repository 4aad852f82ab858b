"""`GET /health`: cheap liveness/readiness for load balancers and the portal.

The public answer is only `{"status": "ok" | "degraded" | "down"}` (200, or 503 when the
database is unreachable): enough for a load balancer, and nothing an outsider can map the
deployment with. The details (database, Redis, workers, pool) are for signed-in admins and for
monitoring that sends `HEALTH_TOKEN` (`Authorization: Bearer <token>` or `X-Health-Token`).
Even then no check's error text names a host, a port or a driver message: those go to the log.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.extensions import csrf
from portal.services.monitoring.health import check_health

bp = Blueprint("health", __name__)
csrf.exempt(bp)


def _presented_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-Health-Token", "").strip()


def may_see_details(database_up: bool) -> bool:
    """The configured HEALTH_TOKEN (compared in constant time), or a signed-in admin (looked
    up only while the database answers: a poll must not fail on the session's user)."""
    token = current_app.config["SETTINGS"].health_token
    presented = _presented_token()
    if token and presented and hmac.compare_digest(presented.encode(), token.encode()):
        return True
    return database_up and bool(current_user.is_authenticated and current_user.admin)


@bp.get("/health")
def health() -> ResponseReturnValue:
    report = check_health()
    status = 503 if report["status"] == "down" else 200
    details = may_see_details(database_up=report["status"] != "down")
    body = report if details else {"status": report["status"]}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, status
