"""Live updates: the Socket.IO namespace /admin and the `pool_update` broadcast.

Connections are authenticated with the portal's login session (the browser sends its session
cookie with the Socket.IO handshake): anonymous visitors and signed-in users who are not admins
are refused at connect, so a pool payload never reaches them. A connecting admin gets the
current payload at once, which is what turns the dashboard's indicator to "live".

`broadcast_pool_update` is what a web process calls after it changed the pool (the quick
actions do). With REDIS_URL set, Flask-SocketIO publishes through the Redis message queue, so
every web process delivers it to its own browsers, and RQ workers reach them the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, request
from flask.blueprints import BlueprintSetupState
from flask_login import current_user
from flask_socketio import Namespace, emit

from portal.appcontext import current_flask_app, db_session
from portal.blueprints.admin.blueprint import bp
from portal.extensions import db, socketio
from portal.services.infra.queue import get_redis
from portal.services.monitoring.live import publish_pool_update
from portal.services.monitoring.payload import admin_pool_payload, publish_pool_payload

log = logging.getLogger("portal.admin.socket")

NAMESPACE = "/admin"
EVENT = "pool_update"


def origin_check(extra_origins: Iterable[str] = ()) -> Callable[[str | None, dict[str, Any]], bool]:
    """The Socket.IO server's origin rule: a browser may connect from this site's own origin
    (its scheme and Host, as ProxyFix corrected them behind a proxy) or from one of
    `extra_origins` (SOCKETIO_ORIGINS). Anything else is refused before the handshake, so a
    page on another site cannot open the admin namespace with an admin's cookies. Forwarded
    headers are not trusted here unless ProxyFix applied them."""
    allowed = frozenset(origin.lower().rstrip("/") for origin in extra_origins)

    def check(origin: str | None, wsgi_env: dict[str, Any]) -> bool:
        if not origin:
            return False
        origin = origin.lower().rstrip("/")
        own = f"{wsgi_env.get('wsgi.url_scheme', 'http')}://{wsgi_env.get('HTTP_HOST', '')}"
        if origin == own.lower() or origin in allowed:
            return True
        log.warning("admin.socket_origin_refused", extra={"origin": origin[:200]})
        return False

    return check


def current_payload(app: Flask | None = None) -> dict[str, Any]:
    """The /admin/api/pool payload, computed in the current app context."""
    app = app or current_flask_app()
    return admin_pool_payload(db_session(), app.config["SETTINGS"], get_redis(app))


class AdminNamespace(Namespace):
    """/admin: admins only; pushes `pool_update` payloads."""

    def on_connect(self, auth: Any = None) -> bool | None:
        # Flask-Login caches the user on `g`, which belongs to the app context; a socket event
        # may run inside an app context that outlived an earlier request (tests, embedded
        # runners), so resolve the user from this connection's own session.
        g.pop("_login_user", None)
        if not current_user.is_authenticated or not current_user.admin:
            log.warning(
                "admin.socket_refused",
                extra={
                    "authenticated": bool(current_user.is_authenticated),
                    "remote_addr": request.remote_addr,
                },
            )
            return False
        log.info("admin.socket_connected", extra={"user_id": str(current_user.id)})
        try:
            emit(EVENT, current_payload())
        except Exception:  # the first update comes with the next change instead
            log.exception("admin.socket_initial_payload_failed")
            db.session.rollback()
        return None

    def on_disconnect(self, reason: Any = None) -> None:
        log.debug("admin.socket_disconnected", extra={"reason": str(reason)})


def broadcast_pool_update(payload: dict[str, Any] | None = None) -> bool:
    """Send `pool_update` (`payload`, else the current one) to every admin dashboard; False
    (logged) when it could not be built or sent.

    Goes through `portal.services.monitoring.payload.publish_pool_payload` and
    `live.publish_pool_update`, what jobs use too. Never raises: a dashboard missing one update
    must not turn a successful action into an error page."""
    app = current_flask_app()
    if payload is None:
        return publish_pool_payload(app, db_session(), app.config["SETTINGS"], get_redis(app))
    return publish_pool_update(app, payload)


def _register_namespace(state: BlueprintSetupState) -> None:
    """Attach the namespace to this app's Socket.IO server.

    Done per app, when the blueprint is registered, because `socketio.init_app` builds a new
    server for every app and a handler registered on an earlier app's server would be lost."""
    server = state.app.extensions["socketio"].server
    if NAMESPACE not in server.namespace_handlers:
        namespace = AdminNamespace(NAMESPACE)
        # Flask-SocketIO binds a namespace to its server this way (as its on_namespace does);
        # the stubs leave out its private methods.
        namespace._set_socketio(socketio)  # type: ignore[attr-defined]
        server.register_namespace(namespace)


bp.record_once(_register_namespace)

__all__ = ["NAMESPACE", "AdminNamespace", "broadcast_pool_update", "current_payload"]
