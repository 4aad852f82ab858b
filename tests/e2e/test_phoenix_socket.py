"""The Phoenix Channels socket at /socket/websocket, driven by the real `phoenix` npm client.

`tests/support/phoenix_client.mjs` opens the socket exactly as the Chi War web client does
(shot-client-next src/lib/client/unifiedChannelClient.ts: `new Socket("<server>/socket",
{params: () => ({token})})`, channels `user:<id>` and `campaign:<id>` joined with `{id}`,
listening to `message`), against the app served for real (Werkzeug, threads, simple-websocket).
Each test reads what the client reports, one JSON line per event, with a bounded wait.
"""

from __future__ import annotations

import http.client
import json
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from jobs.seeding import seed_campaign_job
from portal.extensions import db
from portal.models import Campaign
from portal.services.accounts.jwt_tokens import issue_jwt
from portal.services.infra.channels import publish_seeding
from portal.services.infra.queue import get_redis
from tests.conftest import app_on
from tests.support.auth import AuthActions
from tests.support.browser import LiveServer, start_live_server
from tests.support.databases import TestDatabases

ROOT = Path(__file__).parent.parent.parent
CLIENT = ROOT / "tests" / "support" / "phoenix_client.mjs"
WAIT_S = 30.0  # an upper bound for a message that should come; never a timing assertion

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "phoenix").exists(),
    reason="needs node and the npm devDependencies (make install)",
)


class PhoenixClient:
    """The node process and the events it reported."""

    def __init__(self, base_url: str, token: str, *topics: str) -> None:
        ws_url = base_url.replace("http://", "ws://")
        self.process = subprocess.Popen(
            ["node", str(CLIENT), ws_url, token, *topics],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.events.put(json.loads(line))

    def wait_for(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event (already seen or still to come) that `wanted` accepts."""
        for event in self.seen:
            if wanted(event):
                return event
        while True:
            try:
                event = self.events.get(timeout=WAIT_S)
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None else ""
                raise AssertionError(f"not reported; saw {self.seen} {stderr}") from None
            self.seen.append(event)
            if wanted(event):
                return event

    def joined(self, topic: str) -> dict[str, Any]:
        return self.wait_for(lambda e: e["type"] == "join" and e["topic"] == topic)

    def push(self, topic: str, status: str) -> dict[str, Any]:
        return self.wait_for(
            lambda e: (
                e["type"] == "push"
                and e["topic"] == topic
                and e["payload"].get("seeding_status") == status
            )
        )

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serve(app: Flask) -> Iterator[tuple[Flask, LiveServer]]:
    server = start_live_server(app)
    try:
        yield app, server
    finally:
        server.stop()


@pytest.fixture
def served(template_app: Flask) -> Iterator[tuple[Flask, LiveServer]]:
    yield from _serve(template_app)


@pytest.fixture
def served_async(
    databases: TestDatabases, template_golden: str, redis_url: str
) -> Iterator[tuple[Flask, LiveServer]]:
    """POOL_FALLBACK=async: with an empty pool a create is answered before it is seeded."""
    for app in app_on(databases, template_golden, redis_url, POOL_FALLBACK="async"):
        yield from _serve(app)


@pytest.fixture
def clients() -> Iterator[list[PhoenixClient]]:
    started: list[PhoenixClient] = []
    yield started
    for client in started:
        client.close()


def gamemaster_jwt(app: Flask, email: str = "gm@example.com") -> tuple[Any, str]:
    actions = AuthActions(app.test_client())
    user = actions.create_user(email, admin=False, gamemaster=True, name="Gina Master")
    return user, issue_jwt(user, app.config["SETTINGS"]).token


def create(app: Flask, token: str, name: str) -> dict[str, Any]:
    response = app.test_client().post(
        "/api/v2/campaigns",
        json={"campaign": {"name": name}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_complete_arrives_on_the_user_topic_after_a_create(served, clients):
    app, server = served
    user, token = gamemaster_jwt(app)
    topic = f"user:{user.id}"
    client = PhoenixClient(server.url, token, topic)
    clients.append(client)
    assert client.joined(topic)["status"] == "ok"

    created = create(app, token, "Jade Dragon")

    push = client.push(topic, "complete")
    assert push["event"] == "message"
    assert push["payload"] == {"seeding_status": "complete", "campaign_id": created["id"]}


def test_async_seeding_pushes_its_stages_then_complete(served_async, clients):
    app, server = served_async
    user, token = gamemaster_jwt(app)
    topic = f"user:{user.id}"
    client = PhoenixClient(server.url, token, topic)
    clients.append(client)
    assert client.joined(topic)["status"] == "ok"

    created = create(app, token, "Later")
    assert (created["seeding_status"], created["is_seeding"]) == (None, True)
    campaign_topic = f"campaign:{created['id']}"
    watcher = PhoenixClient(server.url, token, campaign_topic)
    clients.append(watcher)
    assert watcher.joined(campaign_topic)["status"] == "ok"

    # The job a worker would run (jobs.seeding), here in the test's own process.
    assert seed_campaign_job(created["id"])["status"] == "seeded"

    stages = [client.push(topic, stage)["payload"] for stage in ("factions", "schticks")]
    assert all(p["campaign_id"] == created["id"] for p in stages)
    assert client.push(topic, "complete")["payload"]["campaign_id"] == created["id"]
    assert watcher.push(campaign_topic, "complete")["payload"]["campaign_id"] == created["id"]
    db.session.rollback()  # the test's requests share one session: forget what it read before
    shown = app.test_client().get(
        f"/api/v2/campaigns/{created['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert (shown.get_json()["seeding_status"], shown.get_json()["is_seeded"]) == (
        "complete",
        True,
    )


def test_someone_elses_topics_are_refused(served, clients):
    app, server = served
    owner, owner_token = gamemaster_jwt(app, "owner@example.com")
    created = create(app, owner_token, "Private")
    _intruder, token = gamemaster_jwt(app, "intruder@example.com")
    topics = (f"user:{owner.id}", f"campaign:{created['id']}")
    client = PhoenixClient(server.url, token, *topics)
    clients.append(client)

    for topic in topics:
        refused = client.joined(topic)
        assert refused["status"] == "error"
        assert refused["response"] == {"reason": "unauthorized"}


def test_the_owner_may_join_the_campaign_topic(served, clients):
    app, server = served
    _owner, token = gamemaster_jwt(app)
    created = create(app, token, "Mine")
    topic = f"campaign:{created['id']}"
    client = PhoenixClient(server.url, token, topic)
    clients.append(client)
    assert client.joined(topic)["status"] == "ok"


def test_a_bad_token_is_refused_before_the_upgrade(served, clients):
    """As a Phoenix server does (403 on connect): the client never opens, and reports errors."""
    _app, server = served
    client = PhoenixClient(server.url, "not-a-token", f"user:{uuid.uuid4()}")
    clients.append(client)
    client.wait_for(lambda e: e["type"] in ("error", "close"))
    assert not any(e["type"] == "open" for e in client.seen)
    connection = http.client.HTTPConnection("127.0.0.1", server.server.server_port, timeout=10)
    connection.request(
        "GET",
        "/socket/websocket?token=nope&vsn=2.0.0",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
    )
    assert connection.getresponse().status == 403
    connection.close()


@pytest.mark.redis
def test_a_push_from_another_process_arrives_through_redis(served, clients, redis_url):
    """Any process with REDIS_URL may publish (a worker, another web instance): a separate
    Redis connection stands in for one here."""
    if not redis_url:
        pytest.skip("needs a real Redis (TEST_REDIS_URL)")
    app, server = served
    user, token = gamemaster_jwt(app)
    topic = f"user:{user.id}"
    client = PhoenixClient(server.url, token, topic)
    clients.append(client)
    assert client.joined(topic)["status"] == "ok"
    campaign_id = uuid.uuid4()
    publish_seeding(redis.Redis.from_url(redis_url), campaign_id, user.id, "weapons")
    assert client.push(topic, "weapons")["payload"]["campaign_id"] == str(campaign_id)


def test_heartbeat_and_leave_are_answered(served):
    """The frames themselves (refs echoed as strings, the reply shape), with a bare socket."""
    from simple_websocket import Client

    app, server = served
    user, token = gamemaster_jwt(app)
    ws = Client.connect(
        f"{server.url.replace('http', 'ws')}/socket/websocket?token={token}&vsn=2.0.0"
    )
    try:
        ws.send(json.dumps([None, "9", "phoenix", "heartbeat", {}]))
        assert json.loads(ws.receive(timeout=WAIT_S)) == [
            None,
            "9",
            "phoenix",
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        topic = f"user:{user.id}"
        ws.send(json.dumps(["4", "4", topic, "phx_join", {"id": str(user.id)}]))
        assert json.loads(ws.receive(timeout=WAIT_S))[3:] == [
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        publish_seeding(get_redis(app), uuid.uuid4(), user.id, "complete")
        pushed = json.loads(ws.receive(timeout=WAIT_S))
        assert pushed[:4] == ["4", None, topic, "message"]  # stamped with the join ref
        ws.send(json.dumps(["4", "5", topic, "phx_leave", {}]))
        assert json.loads(ws.receive(timeout=WAIT_S))[:4] == ["4", "5", topic, "phx_reply"]
    finally:
        ws.close()
    assert db.session.get(Campaign, uuid.uuid4()) is None  # the app context is still usable
