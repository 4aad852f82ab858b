"""The admin blueprint and its guard: admins only, secure by default.

Every view of this blueprint is guarded by `before_request`, so a page added later cannot be
left open by forgetting a decorator. Anonymous visitors are sent to the login page (or get a
JSON 401 under /admin/api); signed-in users who are not admins get 403. Other blueprints mounted
under /admin (rq-dashboard) protect themselves with `admin_required` / `require_admin`, and the
Socket.IO namespace /admin refuses the same people (see `socket.py`).

The package is split by kind of endpoint: `views` (HTML pages), `api` (JSON for the dashboard's
scripts), `actions` (the quick-action forms), `socket` (live updates) and `rq` (rq-dashboard).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Blueprint, abort
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.blueprints.errors import wants_json
from portal.extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")

P = ParamSpec("P")
R = TypeVar("R")


def require_admin() -> ResponseReturnValue | None:
    """None when the current user is an active admin; otherwise the response to send."""
    if not current_user.is_authenticated:
        if wants_json():
            abort(401, "sign in to the portal first")
        redirect: ResponseReturnValue = login_manager.unauthorized()
        return redirect
    if not current_user.admin:
        abort(403, "The portal is for administrators only.")
    return None


def admin_required(view: Callable[P, R]) -> Callable[P, R | ResponseReturnValue]:
    """The same guard as a decorator, for admin views outside this blueprint."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | ResponseReturnValue:
        denied = require_admin()
        if denied is not None:
            return denied
        return view(*args, **kwargs)

    return wrapper


bp.before_request(require_admin)
