"""`GET /health`: cheap liveness/readiness for load balancers and the portal."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict
from spectree import Response as Doc

from portal.blueprints.spec import api_spec
from portal.extensions import csrf
from portal.services.monitoring.health import check_health

bp = Blueprint("health", __name__)
csrf.exempt(bp)


class HealthCheck(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool


class HealthChecks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: HealthCheck
    redis: HealthCheck
    workers: HealthCheck
    pool: HealthCheck


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "degraded", "down"]
    checks: HealthChecks


@bp.get("/health")
@api_spec.validate(
    resp=Doc(
        HTTP_200=(Health, "Up: `ok`, or `degraded` (Redis, workers, pool)."),
        HTTP_503=(Health, "Down: the database is unreachable."),
    ),
    security={},
)
def health() -> ResponseReturnValue:
    """Liveness and readiness."""
    report = check_health()
    status = 503 if report["status"] == "down" else 200
    return jsonify(report), status
