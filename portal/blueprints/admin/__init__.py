"""The admin portal under /admin: admins only, secure by default.

Every view of this blueprint is guarded by `before_request`, so a page added later cannot be
left open by forgetting a decorator. Anonymous visitors are sent to the login page (or get a
JSON 401 under /admin/api); signed-in users who are not admins get 403. Other blueprints mounted
under /admin (rq-dashboard) protect themselves with `admin_required` / `require_admin`, and the
Socket.IO namespace /admin refuses the same people (see `socket.py`).

The package is split by kind of endpoint: `views` (HTML pages), `api` (JSON for the dashboard's
scripts), `actions` (the quick-action forms), `socket` (live updates) and `rq` (rq-dashboard).
"""

from __future__ import annotations

from portal.blueprints.admin import actions, api, rq, socket, users, views
from portal.blueprints.admin.blueprint import admin_required, bp, require_admin

__all__ = [
    "actions",
    "admin_required",
    "api",
    "bp",
    "require_admin",
    "rq",
    "socket",
    "users",
    "views",
]
