"""Scale-out: two gunicorn instances, two RQ workers and one scheduler on one PostgreSQL and one
Redis share one pool correctly (docs/running.md, "Scaling out"; issue 18).

Gamemasters spread over both instances create campaigns concurrently while both workers refill
the pool. Afterwards: every create answered 201, no campaign handed out twice, every campaign
verifies against the template and belongs to its requester, the pool is back at its target,
and the two workers had two builds of the pool in flight at once (read from the `replenished`
events). An admin's Socket.IO client connected to instance A receives `pool_update` when a
client of instance B claims and when a worker finishes a build: the instances and workers
share the Socket.IO message queue on Redis.

Marked slow; scaled small (a pool of 6, 8 clients x 3 creates) so that it runs in about a
minute on the shared 2-core machine.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
import socketio
import sqlalchemy as sa

from portal.devtools.http_client import Reply
from portal.extensions import db
from portal.models import PoolEvent, utcnow
from portal.services.accounts.users import create_user
from portal.services.pool.config import set_pool_setting
from portal.services.pool.status import build_timeline
from tests.support.auth import csrf_token_from
from tests.support.processes import require_redis, running_stack, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TARGET = 6
CLIENTS = 8
PER_CLIENT = 3
ADMIN_EMAIL = "scale-admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


class AdminSocket:
    """An admin's dashboard connection to one instance: signs in through the login form, then
    listens on /admin and keeps every `pool_update` payload with the time it arrived."""

    def __init__(self, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        web = requests.Session()
        page = web.get(f"{base}/login", timeout=10)
        response = web.post(
            f"{base}/login",
            data={
                "csrf_token": csrf_token_from(page.text),
                "email": ADMIN_EMAIL,
                "password": ADMIN_PASSWORD,
                "next": "",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text[:300]
        cookie = "; ".join(f"{c.name}={c.value}" for c in web.cookies)
        self.updates: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("pool_update", self._received, namespace="/admin")
        self.sio.connect(
            base,
            headers={"Cookie": cookie},
            namespaces=["/admin"],
            transports=["polling"],
            wait_timeout=20,
        )

    def _received(self, payload: dict[str, Any]) -> None:
        with self.lock:
            self.updates.append((time.monotonic(), payload))

    def since(self, moment: float) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for at, payload in self.updates if at >= moment]

    def close(self) -> None:
        self.sio.disconnect()


def ready_of(payload: dict[str, Any]) -> int:
    return int(payload["pools"]["master"]["ready"])


def test_two_instances_and_two_workers_share_one_pool(
    databases, template_golden, redis_url, tmp_path
):
    with running_stack(
        databases, template_golden, require_redis(redis_url), tmp_path,
        users=CLIENTS, master_target=TARGET, workers=2, servers=2, scheduler=True,
    ) as stack:  # fmt: skip
        with stack.app.app_context():
            create_user(db.session, ADMIN_EMAIL, "Scale Admin", ADMIN_PASSWORD, admin=True)
            # One campaign per build: the deficit is shared out build by build, so both
            # workers get work whenever the pool is two or more short.
            set_pool_setting(db.session, "build_batch_size", 1)
            db.session.commit()
            db.session.remove()
        assert stack.ready() == TARGET
        for server in (0, 1):
            status, health = stack.health(server)
            assert status == 200, health
        wait_until(
            lambda: stack.health(1)[1]["checks"]["workers"].get("count") == 2, 30, "two workers"
        )
        admin = AdminSocket(stack.ports[0])
        try:
            wait_until(lambda: admin.since(0), 20, "the payload sent on connect")

            # A claim on instance B reaches the dashboard on instance A ...
            moment = time.monotonic()
            first = stack.client(0, server=1).create("Scale-out first claim")
            assert (first.status, first.source) == (201, "master_pool"), first

            def claimed() -> Any:
                return [
                    p
                    for p in admin.since(moment)
                    if p["assignments"]["pool_hits"] >= 1 and ready_of(p) == TARGET - 1
                ]

            wait_until(claimed, 60, "pool_update on A for the claim on B")
            # ... and so does the worker's build that replaces it.
            wait_until(
                lambda: [
                    p
                    for p in admin.since(moment)
                    if p["assignments"]["pool_hits"] >= 1 and ready_of(p) == TARGET
                ],
                60,
                "pool_update on A after a worker's build",
            )

            # Clients spread over both instances, while both workers refill.
            since = utcnow()
            samples = _load(stack)
            stack.wait_for_pool(TARGET, timeout_s=120)
            status_a, health_a = stack.health(0)
            status_b, health_b = stack.health(1)
            checks = stack.check([*samples, first])
            statuses = stack.pool_statuses()
            with stack.app.app_context():
                timeline = build_timeline(db.session, since)
                snapshots = db.session.scalar(
                    sa.select(sa.func.count()).where(PoolEvent.kind == "snapshot")
                )
                db.session.remove()
        finally:
            admin.close()

    assert [s for s in samples if s.status != 201] == []
    assert {s.source for s in samples} <= {"master_pool", "seeded"}
    assert checks.returned == checks.distinct == CLIENTS * PER_CLIENT + 1
    assert checks.problems == []  # none handed out twice, to the wrong user, or not verifying
    assert statuses.get("building", 0) == 0 and statuses.get("failed", 0) == 0
    assert statuses["ready"] == TARGET  # back at the target, and never past it
    # Both workers built at once: two builds of the pool in flight.
    assert timeline["builds"] >= 2 and timeline["max_in_flight"] == 2, timeline
    # The scheduler ran the monitor on a worker.
    assert snapshots >= 1
    for status, health in ((status_a, health_a), (status_b, health_b)):
        assert status == 200 and health["status"] == "ok", health
        assert health["checks"]["workers"]["count"] == 2


def _load(stack: Any) -> list[Reply]:
    """CLIENTS gamemasters, half on each instance, PER_CLIENT creates each, released at once."""
    results: list[list[Reply]] = [[] for _ in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)

    def work(index: int) -> None:
        client = stack.client(index, server=index % 2)
        try:
            barrier.wait(timeout=30)
            for n in range(PER_CLIENT):
                results[index].append(client.create(f"Scale-out {index}-{n}"))
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return [sample for batch in results for sample in batch]
