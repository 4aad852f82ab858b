"""rq-dashboard mounted at /admin/rq, behind the portal's admin check, hardened at the mount.

rq-dashboard 0.9 has no authentication of its own, so the guard is the first thing its
blueprint runs on every request (inserted ahead of rq-dashboard's own `before_request`, which
would otherwise open a Redis connection for anonymous visitors). It also reads jobs through the
application's own Redis connection: with REDIS_URL that is the real Redis, and on the embedded
default it is the in-process fakeredis that the worker thread uses, which no URL could reach.

Hardening, without forking it (docs/security.md):
- no state change over GET: its "requeue all" route also answers GET, which the mount refuses
  (405); every POST needs the CSRF token (CSRFProtect covers the blueprint, and an injected
  static script makes its jQuery POSTs send the token as the X-CSRFToken header);
- bad parameters and missing things are 4xx, never 500: the URL's instance, registry, order,
  page and page size are checked before its views run, compacting a queue that does not exist
  (or is empty) is a 404, and a missing job is a 404 wherever a view looks one up;
- its pages run under the Content-Security-Policy: the mount puts this response's nonce on
  rq-dashboard's one inline script block (see `portal.blueprints.headers`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import rq_dashboard
from flask import Flask, Response, abort, current_app, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from markupsafe import escape
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from portal.blueprints.admin.blueprint import bp, require_admin
from portal.blueprints.headers import csp_nonce
from portal.services.infra.queue import get_redis

URL_PREFIX = "/admin/rq"
BLUEPRINT = "rq_dashboard"
REGISTRIES = frozenset(
    {"queued", "failed", "deferred", "started", "finished", "scheduled", "canceled"}
)
ORDERS = frozenset({"asc", "dsc"})
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000
POST_ONLY = frozenset({"rq_dashboard.requeue_all"})
# rq-dashboard's one inline <script> (its set-up code); scripts with src are not matched.
INLINE_SCRIPT = '<script type="text/javascript">'


def _redacted(url: str) -> str:
    return re.sub(r"://[^@/]*@", "://***@", url)


def guard_rq() -> ResponseReturnValue | None:
    """The admin check, for rq-dashboard's pages, JSON and static files alike."""
    return require_admin()


def _whole_number(name: str, value: Any, most: int) -> None:
    text = str(value)
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= most:
        abort(400, f"{name} must be a whole number from 1 to {most}.")


def check_rq_request() -> None:
    """Refuse, before rq-dashboard's view runs, what would change state over GET or make it
    fail with a 500 (see the module docstring)."""
    if request.endpoint in POST_ONLY and request.method != "POST":
        abort(405, valid_methods=["POST"])
    args = request.view_args or {}
    if args.get("instance_number", 0) != 0:
        abort(404, "There is one Redis instance here: 0.")
    if "registry_name" in args and args["registry_name"] not in REGISTRIES:
        abort(404, f"No registry {str(args['registry_name'])[:50]!r}; one of {sorted(REGISTRIES)}.")
    if "order" in args and args["order"] not in ORDERS:
        abort(404, "The order is asc or dsc.")
    if "per_page" in args:
        _whole_number("The page size", args["per_page"], MAX_PER_PAGE)
    if "page" in args:
        _whole_number("The page", args["page"], MAX_PAGE)
    if request.endpoint == "rq_dashboard.compact_queue":
        queue = Queue(args["queue_name"], connection=get_redis())
        if not get_redis().exists(queue.key):
            abort(404, "No such queue, or it is empty: there is nothing to compact.")


def use_app_connection() -> None:
    """Point rq-dashboard at the app's Redis connection for this request (replaces its own
    `push_rq_connection`, which opens a new connection from a URL on every request)."""
    _give_connection(current_app)


def _give_connection(app: Flask) -> None:
    """rq-dashboard reads its Redis connection from the app's `redis_conn` attribute (its own,
    which Flask does not declare: hence the one ignore)."""
    app.redis_conn = get_redis(app)  # type: ignore[attr-defined]


def translate_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """A missing job is a 404 and an impossible operation on one (requeueing a job that has
    not failed) a 409, instead of rq-dashboard's unhandled exception (a 500)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except NoSuchJobError:
            abort(404, "No such job (it may have expired or been deleted).")
        except InvalidJobOperation as exc:
            abort(409, str(exc) or "That is not possible for this job.")

    return wrapper


def adapt_page(response: Response) -> Response:
    """On rq-dashboard's HTML pages: put this response's CSP nonce on its inline script, make
    its jQuery POSTs carry the CSRF token (static script, token in a data attribute), and give
    its pages a way back to the portal."""
    if response.mimetype != "text/html" or response.direct_passthrough:
        return response
    body = response.get_data(as_text=True)
    if "</body>" not in body:
        return response
    nonce = csp_nonce()
    body = body.replace(INLINE_SCRIPT, f'<script nonce="{nonce}" type="text/javascript">')
    css = url_for("static", filename="css/rq-mount.css")
    script = url_for("static", filename="js/rq-mount.js")
    token = escape(generate_csrf())
    head = f'<link rel="stylesheet" href="{css}">'
    tail = (
        '<a class="cp-back" href="/admin/">&larr; Pool dashboard</a>'
        f'<script src="{script}" data-csrf-token="{token}"></script>'
    )
    body = body.replace("</head>", f"{head}</head>", 1).replace("</body>", f"{tail}</body>", 1)
    response.set_data(body)
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
    funcs[0:0] = [guard_rq, check_rq_request, use_app_connection]
    app.after_request_funcs.setdefault(BLUEPRINT, []).append(adapt_page)
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(BLUEPRINT + "."):
            app.view_functions[endpoint] = translate_errors(view)


def _on_admin_registered(state: BlueprintSetupState) -> None:
    if not isinstance(state.app, Flask):  # typed as Flask's sans-IO base; always a Flask here
        raise TypeError(f"rq-dashboard needs a Flask app, not {type(state.app).__name__}")
    register_rq_dashboard(state.app)


bp.record_once(_on_admin_registered)
