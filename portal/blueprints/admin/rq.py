"""rq-dashboard mounted at /admin/rq, behind the portal's admin check.

rq-dashboard 0.9 has no authentication of its own, so the guard is the first thing its
blueprint runs on every request (inserted ahead of rq-dashboard's own `before_request`, which
would otherwise open a Redis connection for anonymous visitors). It also reads jobs through the
application's own Redis connection: with REDIS_URL that is the real Redis, and on the embedded
default it is the in-process fakeredis that the worker thread uses, which no URL could reach.
Its job buttons (delete, requeue, empty) are jQuery POSTs; CSRF stays on for them, and an
injected `ajaxSetup` sends the token as the X-CSRFToken header CSRFProtect accepts.
"""

from __future__ import annotations

import json
import re

import rq_dashboard
from flask import Flask, Response, current_app
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf

from portal.blueprints.admin.blueprint import bp, require_admin
from portal.services.infra.queue import get_redis

URL_PREFIX = "/admin/rq"
BLUEPRINT = "rq_dashboard"


def _redacted(url: str) -> str:
    return re.sub(r"://[^@/]*@", "://***@", url)


def guard_rq() -> ResponseReturnValue | None:
    """The admin check, for rq-dashboard's pages, JSON and static files alike."""
    return require_admin()


def use_app_connection() -> None:
    """Point rq-dashboard at the app's Redis connection for this request (replaces its own
    `push_rq_connection`, which opens a new connection from a URL on every request)."""
    _give_connection(current_app)


def _give_connection(app: Flask) -> None:
    """rq-dashboard reads its Redis connection from the app's `redis_conn` attribute (its own,
    which Flask does not declare: hence the one ignore)."""
    app.redis_conn = get_redis(app)  # type: ignore[attr-defined]


def add_csrf_header(response: Response) -> Response:
    """Make rq-dashboard's jQuery POSTs carry the CSRF token (see the module docstring), and
    give its pages a way back to the portal."""
    if response.mimetype != "text/html" or response.direct_passthrough:
        return response
    body = response.get_data(as_text=True)
    if "</body>" not in body:
        return response
    token = json.dumps(generate_csrf())  # URL-safe characters only; quoted as a JS string
    setup = f"jQuery.ajaxSetup({{headers: {{'X-CSRFToken': {token}}}}});"
    script = f"<script>window.jQuery && {setup}</script>"
    back = (
        '<a href="/admin/" style="position:fixed;bottom:1rem;right:1rem;padding:.4rem .8rem;'
        'background:#b3261e;color:#fff;border-radius:8px;text-decoration:none">'
        "&larr; Pool dashboard</a>"
    )
    response.set_data(body.replace("</body>", f"{back}{script}</body>", 1))
    return response


def register_rq_dashboard(app: Flask) -> None:
    """Mount rq-dashboard on `app` under /admin/rq with the guard first in line."""
    settings = app.config["SETTINGS"]
    url = _redacted(settings.redis_url) if settings.redis_url else "embedded (in-process queue)"
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", (url,))
    _give_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    funcs = app.before_request_funcs.setdefault(BLUEPRINT, [])
    funcs[:] = [f for f in funcs if f is not rq_dashboard.web.push_rq_connection]
    funcs[0:0] = [guard_rq, use_app_connection]
    app.after_request_funcs.setdefault(BLUEPRINT, []).append(add_csrf_header)


def _on_admin_registered(state: BlueprintSetupState) -> None:
    if not isinstance(state.app, Flask):  # typed as Flask's sans-IO base; always a Flask here
        raise TypeError(f"rq-dashboard needs a Flask app, not {type(state.app).__name__}")
    register_rq_dashboard(state.app)


bp.record_once(_on_admin_registered)
