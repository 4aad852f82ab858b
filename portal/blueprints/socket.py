"""`/socket/websocket`: the Phoenix Channels socket the Chi War web client listens on.

Phoenix's JSON serializer, protocol version 2 (what the `phoenix` npm client speaks): every
text frame is `[join_ref, ref, topic, event, payload]`. The client connects with its JWT (or API
token) in the query string (`?token=...&vsn=2.0.0`); a missing or refused token is a 403 before
the upgrade, as a Phoenix server answers. Then:

* `phx_join` on `user:<id>` is allowed for that user only, on `campaign:<id>` for the campaign's
  owner (or an admin); the reply is `phx_reply` `{"status": "ok"}` or `{"status": "error",
  "response": {"reason": "unauthorized"}}`;
* `heartbeat` on topic `phoenix` is answered at once (the client sends one every 30 s and
  reconnects when a reply is late); a socket silent for IDLE_TIMEOUT_S is closed;
* `phx_leave` leaves the topic; `ping` on a joined topic answers `{"pong": "pong"}`;
* pushes go out as `[join_ref, null, topic, "message", payload]` with the join_ref of the
  topic's current join (the client drops pushes stamped with an older one).

Pushes come from `portal.services.infra.channels`: anything published there (by this or another
web process, or a worker) reaches every socket joined to its topic through the process's Hub.
Each socket holds one thread for its life (gunicorn threads, Werkzeug's threaded server).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from typing import Any

import simple_websocket
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from portal.appcontext import db_session
from portal.extensions import csrf, db
from portal.models import Campaign, User
from portal.services.accounts.bearer import resolve_bearer
from portal.services.infra.channels import Hub
from portal.services.infra.queue import get_redis

log = logging.getLogger("portal.socket")

bp = Blueprint("socket", __name__)
csrf.exempt(bp)

IDLE_TIMEOUT_S = 60.0
MAX_FRAME_BYTES = 64 * 1024
HEARTBEAT_TOPIC = "phoenix"


def hub_for(app: Flask) -> Hub:
    """The app's one Redis subscription (started with its first socket)."""
    hub = app.extensions.get("phoenix_hub")
    if not isinstance(hub, Hub):
        hub = Hub(get_redis(app))
        app.extensions["phoenix_hub"] = hub
    return hub


class PhoenixSocket:
    """One client connection: its joined topics and the frames going both ways."""

    def __init__(self, ws: simple_websocket.Server, user_id: uuid.UUID, hub: Hub) -> None:
        self.ws = ws
        self.user_id = user_id
        self.hub = hub
        self.joined: dict[str, tuple[str | None, int]] = {}  # topic -> (join_ref, handle)
        self.send_lock = threading.Lock()

    def send(self, frame: list[Any]) -> None:
        # A closed socket: the reading loop notices and cleans up.
        with self.send_lock, contextlib.suppress(simple_websocket.ConnectionClosed, OSError):
            self.ws.send(json.dumps(frame))

    def reply(self, join_ref: Any, ref: Any, topic: str, status: str, response: Any) -> None:
        self.send([join_ref, ref, topic, "phx_reply", {"status": status, "response": response}])

    def push(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        """Called by the hub for every message on a joined topic."""
        joined = self.joined.get(topic)
        if joined is not None:
            self.send([joined[0], None, topic, event, payload])

    def run(self) -> None:
        last_seen = time.monotonic()
        try:
            while self.ws.connected:
                try:
                    text = self.ws.receive(timeout=1.0)
                except simple_websocket.ConnectionClosed:
                    break
                if text is None:
                    if time.monotonic() - last_seen > IDLE_TIMEOUT_S:
                        break
                    continue
                last_seen = time.monotonic()
                self.handle(text)
        finally:
            for topic in list(self.joined):
                self.leave(topic)
            if self.ws.connected:
                with contextlib.suppress(simple_websocket.ConnectionClosed, OSError):
                    self.ws.close()

    def handle(self, text: str | bytes) -> None:
        try:
            frame = json.loads(text)
            join_ref, ref, topic, event, _payload = frame
            if not isinstance(topic, str) or not isinstance(event, str):
                raise ValueError("topic and event must be strings")
        except (TypeError, ValueError):
            log.info("socket.bad_frame", extra={"user_id": str(self.user_id)})
            return
        if topic == HEARTBEAT_TOPIC and event == "heartbeat":
            self.reply(join_ref, ref, topic, "ok", {})
        elif event == "phx_join":
            self.join(join_ref, ref, topic)
        elif event == "phx_leave":
            self.leave(topic)
            self.reply(join_ref, ref, topic, "ok", {})
        elif topic not in self.joined:
            self.reply(join_ref, ref, topic, "error", {"reason": "unmatched topic"})
        elif event == "ping":
            self.reply(join_ref, ref, topic, "ok", {"pong": "pong"})
        else:
            self.reply(join_ref, ref, topic, "error", {"reason": "unmatched event"})

    def join(self, join_ref: Any, ref: Any, topic: str) -> None:
        if not may_join(self.user_id, topic):
            log.info("socket.join_refused", extra={"user_id": str(self.user_id), "topic": topic})
            self.reply(join_ref, ref, topic, "error", {"reason": "unauthorized"})
            return
        if topic in self.joined:  # a rejoin replaces the earlier join, as Phoenix does
            old_ref, _ = self.joined[topic]
            self.leave(topic)
            self.send([old_ref, None, topic, "phx_close", {}])
        self.joined[topic] = (join_ref, -1)
        handle = self.hub.subscribe(topic, self.push)
        self.joined[topic] = (join_ref, handle)
        self.reply(join_ref, ref, topic, "ok", {})

    def leave(self, topic: str) -> None:
        joined = self.joined.pop(topic, None)
        if joined is not None:
            self.hub.unsubscribe(topic, joined[1])


def may_join(user_id: uuid.UUID, topic: str) -> bool:
    """`user:<id>`: that user only. `campaign:<id>`: its owner, or an admin."""
    kind, _, raw_id = topic.partition(":")
    try:
        wanted = uuid.UUID(raw_id)
    except ValueError:
        return False
    if kind == "user":
        return wanted == user_id
    if kind != "campaign":
        return False
    try:
        user = db.session.get(User, user_id)
        campaign = db.session.get(Campaign, wanted)
        if user is None or not user.active or campaign is None or campaign.is_pool:
            return False
        return campaign.user_id == user_id or user.admin
    finally:
        db.session.remove()  # hand the connection back: a socket lives for hours


class _Upgraded(Response):
    """What the view returns once the socket is over: the connection was taken over by the
    WebSocket, so nothing more may be written; each server is told so its own way."""

    mode = "unknown"

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.mode == "gunicorn":
            raise StopIteration()
        if self.mode == "werkzeug":
            raise ConnectionError()
        return []


# `websocket=True`: Werkzeug routes an upgrade request only to such a rule (a plain GET of
# this URL is a 400 from the router).
@bp.route("/socket/websocket", websocket=True)
def websocket() -> ResponseReturnValue:
    """Authenticate from `?token=`, upgrade, and serve the socket until it closes."""
    found = resolve_bearer(db_session(), request.args.get("token"), current_app.config["SETTINGS"])
    if found is None:
        return jsonify({"error": "Forbidden", "message": "invalid or missing token"}), 403
    user_id = found.user.id
    if found.touched:
        db.session.commit()
    db.session.remove()
    ws = simple_websocket.Server(request.environ, max_message_size=MAX_FRAME_BYTES)
    log.info("socket.connected", extra={"user_id": str(user_id)})
    PhoenixSocket(ws, user_id, hub_for(current_app._get_current_object())).run()  # type: ignore[attr-defined]
    log.info("socket.closed", extra={"user_id": str(user_id)})
    response = _Upgraded()
    response.mode = ws.mode
    return response
