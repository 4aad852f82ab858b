"""The admin Socket.IO namespace accepts same-origin connections (and SOCKETIO_ORIGINS) only
(docs/security.md): a real python-socketio client carrying an admin's session cookie is refused
when it says it comes from another site, and served (`pool_update`) from the portal's own
origin, over WebSocket and long-polling alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import socketio

from portal.extensions import db
from portal.services.accounts.users import create_user
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, csrf_token_from
from tests.support.browser import LiveServer, start_live_server
from tests.support.databases import TestDatabases

ADMIN = "admin@example.com"
EVIL = "https://evil.example"
OPS = "https://ops.example.org"


@pytest.fixture
def served(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[LiveServer]:
    for app in app_on(databases, migrated_golden, redis_url, SOCKETIO_ORIGINS=OPS):
        create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
        db.session.commit()
        server = start_live_server(app)
        try:
            yield server
        finally:
            server.stop()


def admin_cookie(base: str) -> str:
    """Sign in through the real form over HTTP; the session cookie as a browser would send it."""
    with requests.Session() as http:
        page = http.get(f"{base}/login", timeout=30)
        data = {"csrf_token": csrf_token_from(page.text), "email": ADMIN}
        data["password"] = DEFAULT_PASSWORD
        response = http.post(f"{base}/login", data=data, allow_redirects=False, timeout=30)
        assert response.status_code == 302
        return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


def connect(base: str, origin: str, cookie: str, transport: str) -> dict[str, Any]:
    """Connect to /admin as a browser on `origin` would; what happened."""
    # websocket-client adds an Origin of its own unless told not to; a browser sends one.
    client = socketio.Client(reconnection=False, websocket_extra_options={"suppress_origin": True})
    got: dict[str, Any] = {"connected": False, "payload": None}
    arrived = threading.Event()

    @client.on("pool_update", namespace="/admin")
    def on_update(data: Any) -> None:
        got["payload"] = data
        arrived.set()

    try:
        client.connect(
            base,
            headers={"Origin": origin, "Cookie": cookie},
            namespaces=["/admin"],
            transports=[transport],
            wait_timeout=20,
        )
        got["connected"] = True
        arrived.wait(20)
    except socketio.exceptions.ConnectionError as exc:
        got["error"] = str(exc)
    finally:
        client.disconnect()
    return got


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_foreign_origin_is_refused_and_own_origin_served(
    served: LiveServer, transport: str
) -> None:
    base = served.url
    cookie = admin_cookie(base)

    foreign = connect(base, EVIL, cookie, transport)
    assert foreign["connected"] is False and foreign["payload"] is None

    own = connect(base, base, cookie, transport)
    assert own["connected"] is True, own
    assert own["payload"] is not None and "pools" in own["payload"]

    configured = connect(base, OPS, cookie, transport)
    assert configured["connected"] is True and configured["payload"] is not None


def test_own_origin_without_the_admin_session_is_still_refused(served: LiveServer) -> None:
    anonymous = connect(served.url, served.url, "", "polling")
    assert anonymous["connected"] is False


def test_the_origin_check_follows_the_forwarded_host_only_behind_proxyfix(
    databases: TestDatabases, migrated_golden: str, redis_url: str
) -> None:
    """Behind a TLS proxy the browser's origin is https://public-host; ProxyFix (PROXY_FIX_HOPS)
    makes that the site's own origin. Without it, forwarded headers are not believed."""
    public = "https://portal.example.net"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.net"}
    for hops, accepted in (("1", True), ("0", False)):
        for app in app_on(databases, migrated_golden, redis_url, PROXY_FIX_HOPS=hops):
            create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
            db.session.commit()
            server = start_live_server(app)
            try:
                client = socketio.Client(reconnection=False)
                try:
                    client.connect(
                        server.url,
                        headers={"Origin": public, **forwarded},
                        namespaces=["/"],
                        transports=["polling"],
                        wait_timeout=20,
                    )
                    connected = True
                except socketio.exceptions.ConnectionError:
                    connected = False
                finally:
                    client.disconnect()
            finally:
                server.stop()
            assert connected is accepted, hops
