"""`GET /health`: cheap liveness/readiness for load balancers and the portal."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from portal.extensions import csrf
from portal.services.monitoring.health import check_health

bp = Blueprint("health", __name__)
csrf.exempt(bp)


@bp.get("/health")
def health() -> ResponseReturnValue:
    report = check_health()
    status = 503 if report["status"] == "down" else 200
    return jsonify(report), status
