"""`pool_update` on the Socket.IO namespace /admin, from wherever the pool changed.

Three places change the pool, and each reaches the browsers differently:

* a web process (a portal action) or the embedded worker thread living in it: through the
  app's own Socket.IO server, which also publishes through the Redis message queue when the
  app was set up with one, so every web process gets it;
* an RQ worker process or a CLI command, which have no browsers of their own: with REDIS_URL,
  through a write-only client of the same message queue (the channel Flask-SocketIO listens
  on), with short socket timeouts so a dead Redis cannot hang a job;
* without REDIS_URL there is only one process, so the app's server is the only way anyway.

Publishing is best effort: a dashboard that misses one update gets the next one, so a failure
is logged and never raised into the job or request that changed the pool. What is published is
the caller's: this module carries a payload and knows nothing of what is in it (the pool
payload is built in `monitoring.payload`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, has_request_context

from portal.config import Settings

log = logging.getLogger("portal.events")

NAMESPACE = "/admin"
EVENT = "pool_update"
# Flask-SocketIO's default message-queue channel: the web processes listen on it.
CHANNEL = "flask-socketio"
EMIT_TIMEOUT_S = 2.0

_emitters: dict[str, Any] = {}
_emitters_lock = threading.Lock()


def _queue_emitter(redis_url: str) -> Any:
    """A write-only client of the Socket.IO message queue (one per URL, reused)."""
    import socketio

    with _emitters_lock:
        emitter = _emitters.get(redis_url)
        if emitter is None:
            emitter = socketio.RedisManager(
                redis_url,
                channel=CHANNEL,
                write_only=True,
                redis_options={
                    "socket_timeout": EMIT_TIMEOUT_S,
                    "socket_connect_timeout": EMIT_TIMEOUT_S,
                },
            )
            _emitters[redis_url] = emitter
        return emitter


def _has_message_queue(app: Flask) -> bool:
    import socketio

    server = getattr(app.extensions.get("socketio"), "server", None)
    return isinstance(getattr(server, "manager", None), socketio.PubSubManager)


def _serves_browsers_here(app: Flask) -> bool:
    """This process holds the app's browser connections: a request of the web process, or
    the embedded worker thread inside it."""
    from portal.runtime import current_embedded_app

    return has_request_context() or current_embedded_app() is app


def route_for(target: Flask | Settings) -> str:
    """ "app" (the app's Socket.IO server) or "queue" (write-only message-queue client)."""
    if isinstance(target, Settings):
        return "queue" if target.redis_url else "none"
    settings: Settings = target.config["SETTINGS"]
    if _has_message_queue(target) or not settings.redis_url:
        return "app"
    return "app" if _serves_browsers_here(target) else "queue"


def publish_pool_update(target: Flask | Settings, payload: dict[str, Any]) -> bool:
    """Emit `pool_update` with `payload` to every admin dashboard; False (logged) on failure.

    `target` is the app (web process, worker, CLI) or just the settings (a process without an
    app, which can only publish through REDIS_URL)."""
    route = route_for(target)
    try:
        if route == "app":
            assert isinstance(target, Flask)
            target.extensions["socketio"].emit(EVENT, payload, namespace=NAMESPACE)
        elif route == "queue":
            settings = target if isinstance(target, Settings) else target.config["SETTINGS"]
            assert settings.redis_url is not None  # route_for picks the queue only with one
            _queue_emitter(settings.redis_url).emit(EVENT, payload, namespace=NAMESPACE)
        else:
            return False
    except Exception as exc:
        log.warning(
            "pool_update.emit_failed",
            extra={"route": route, "error": f"{type(exc).__name__}: {exc}"[:200]},
        )
        return False
    log.debug("pool_update.emitted", extra={"route": route})
    return True
