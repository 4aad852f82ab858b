"""The production shape, as real processes, for the load and fault tests.

A `Stack` is what docs/running.md deploys, on 127.0.0.1: gunicorn (`gunicorn.conf.py`, one
process, threads) and `rq worker --with-scheduler --worker-class jobs.worker.AppWorker`
processes, on a private copy of the template database (PostgreSQL) and a Redis. The processes
are started with `portal.devtools.bench_http`'s helpers (`gunicorn_server`, `rq_worker`), each
in its own process group, and stopped in `finally` blocks whatever the test did, so a failing
test leaves no gunicorn, worker or database behind.

The test process keeps an in-process app on the same database and Redis to prepare (users,
tokens, pool settings, a filled pool) and to check afterwards (verify every returned campaign,
who owns it, whether anything was handed out twice), never to serve.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from portal.devtools.bench_http import (
    POOL_SOURCES,
    BenchUser,
    Client,
    HttpBenchPlan,
    Phase,
    Sample,
    fill_pool,
    gunicorn_server,
    rq_worker,
    server_env,
)
from portal.extensions import db
from portal.models import Campaign, PoolEvent
from portal.services.accounts.tokens import issue_token
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.infra.percentiles import percentile
from portal.services.pool.config import set_pool_setting
from portal.services.seeding.verify import verify_campaigns
from tests.conftest import TEST_SECRET, make_app
from tests.support.databases import TestDatabases

WEB_THREADS = 16


def require_redis(redis_url: str) -> str:
    """The shared test Redis (the `redis_url` fixture, TEST_REDIS_URL), or skip the test."""
    if not redis_url:
        pytest.skip("needs a real Redis: set TEST_REDIS_URL")
    return redis_url


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1
) -> Any:
    """Poll `condition` until it returns something truthy; fail the test naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class Stack:
    """The running processes and what a test needs to talk to and about them."""

    app: Flask
    database_url: str
    redis_url: str
    port: int
    workdir: Path
    env: dict[str, str]
    users: list[BenchUser]
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Every web instance's port (`port` is the first): a scaled-out stack has several.
    ports: list[int] = field(default_factory=list)
    _exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # ---------------------------------------------------------------- processes

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        """One more production worker; stopped with the stack (or killed by the test)."""
        name = name or f"load-worker-{uuid.uuid4().hex[:8]}"
        process = self._exits.enter_context(rq_worker(self.env, self.redis_url, self.workdir, name))
        self.workers[name] = process
        return process

    # ---------------------------------------------------------------- HTTP

    def client(self, user_index: int, timeout_s: float = 60.0, server: int = 0) -> Client:
        port = self.ports[server] if self.ports else self.port
        return Client(port, user_index, self.users[user_index].token, timeout_s)

    def health(self, server: int = 0) -> tuple[int, dict[str, Any]]:
        port = self.ports[server] if self.ports else self.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    # ---------------------------------------------------------------- the database

    def ready(self) -> int:
        """Ready master-pool campaigns of the current template version, right now."""
        with self.app.app_context():
            version = find_master_template(db.session).template_version
            count = db.session.scalar(
                sa.select(sa.func.count()).where(
                    Campaign.is_pool.is_(True),
                    Campaign.pool_type == "master",
                    Campaign.pool_status == "ready",
                    Campaign.template_version == version,
                )
            )
            db.session.remove()
            return int(count or 0)

    def wait_for_pool(self, target: int, timeout_s: float = 60.0) -> None:
        wait_until(lambda: self.ready() >= target, timeout_s, f"{target} ready campaigns")

    def pool_statuses(self) -> dict[str, int]:
        """Pool campaigns by `pool_status` (assigned ones included)."""
        with self.app.app_context():
            rows = db.session.execute(
                sa.select(Campaign.pool_status, sa.func.count())
                .where(Campaign.pool_status.is_not(None))
                .group_by(Campaign.pool_status)
            ).all()
            db.session.remove()
            return {status: count for status, count in rows}

    def check(self, samples: list[Sample]) -> dict[str, Any]:
        """What the database says about every create that returned a campaign: each verifies
        against the template, belongs to its requester (and nobody else holds it in a pool),
        and none was handed out twice. Returns counts; a test asserts they are zero."""
        returned = [s for s in samples if s.campaign_id]
        ids = [uuid.UUID(s.campaign_id) for s in returned if s.campaign_id]
        with self.app.app_context():
            session = db.session
            owners = dict(
                session.execute(
                    sa.select(Campaign.id, Campaign.user_id).where(
                        Campaign.id.in_(ids), Campaign.is_pool.is_(False)
                    )
                ).all()
            )
            assigned = list(
                session.scalars(
                    sa.select(PoolEvent.campaign_id).where(PoolEvent.kind == "assigned")
                )
            )
            failures = [
                f"{report.campaign_id}: {report.differences[:3]}"
                for report in verify_campaigns(session, ids)
                if not report.ok
            ]
            session.remove()
        wrong_owner = [
            s.campaign_id
            for s in returned
            if str(owners.get(uuid.UUID(s.campaign_id))) != self.users[s.user].id
        ]
        return {
            "returned": len(ids),
            "distinct": len(set(ids)),
            "assigned_twice": len(assigned) - len(set(assigned)),
            "wrong_owner": wrong_owner,
            "not_verifying": failures,
        }


@contextlib.contextmanager
def running_stack(
    databases: TestDatabases,
    template_golden: str,
    redis_url: str,
    tmp_path: Path,
    *,
    users: int,
    master_target: int,
    workers: int = 1,
    fill: bool = True,
    env: dict[str, str] | None = None,
    servers: int = 1,
    scheduler: bool = False,
) -> Iterator[Stack]:
    """A private copy of the template database with `users` gamemasters (one token each),
    `master_target` set (user pools off: every create claims from the master pool or falls
    back), the pool filled to it when `fill`, then gunicorn and `workers` workers on
    `redis_url`, whose database is flushed first; with `servers` > 1 that many gunicorn
    instances on the same database and Redis (docs/running.md, scaling out), with `scheduler`
    the one `rq cron` process. Everything is stopped and dropped at the end."""
    url = databases.clone(template_golden, "load")
    redis.Redis.from_url(redis_url).flushdb()
    app = make_app(url, redis_url)
    exits = contextlib.ExitStack()
    try:
        with app.app_context():
            bench_users = _prepare(master_target, users, fill)
            db.session.remove()
            db.engine.dispose()
        plan = HttpBenchPlan(redis_url=redis_url, threads=WEB_THREADS)
        extra = dict(env or {})
        ports = []
        for index in range(servers):
            workdir = tmp_path if index == 0 else tmp_path / f"web-{index}"
            workdir.mkdir(exist_ok=True)
            served, _pgid = exits.enter_context(
                gunicorn_server(url, TEST_SECRET, plan, workdir, extra_env=extra)
            )
            ports.append(served)
        port = ports[0]
        stack = Stack(
            app=app,
            database_url=url,
            redis_url=redis_url,
            port=port,
            workdir=tmp_path,
            env=server_env(url, TEST_SECRET, plan, port, extra),
            users=bench_users,
            ports=ports,
            _exits=exits,
        )
        for _ in range(workers):
            stack.start_worker()
        if scheduler:
            exits.enter_context(rq_cron(stack.env, redis_url, tmp_path))
        yield stack
    finally:
        exits.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


@contextlib.contextmanager
def rq_cron(env: dict[str, str], redis_url: str, workdir: Path) -> Iterator[subprocess.Popen]:
    """The one scheduler of a deployment (docs/operations.md: `rq cron jobs.cron_config`), in
    its own process group, until the block ends; yielded once it has registered."""
    import os
    import sys

    from rq.cron import CronScheduler

    from portal.devtools.bench_http import PROJECT_ROOT, log_tail, stop_process_group

    child_env = dict(env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    log_path = workdir / "rq-cron.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "cron", "jobs.cron_config", "--url", redis_url],
            cwd=workdir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis.from_url(redis_url)
        try:
            deadline = time.monotonic() + 60
            while not CronScheduler.all(client):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rq cron did not start:\n{log_tail(log_path)}")
                time.sleep(0.1)
            yield process
        finally:
            client.close()
            stop_process_group(process)


def _prepare(master_target: int, users: int, fill: bool) -> list[BenchUser]:
    session = db.session
    set_pool_setting(session, "master_target", master_target)
    set_pool_setting(session, "user_target", 0)
    bench_users = []
    for index in range(users):
        user = create_user(
            session, f"load-gm-{index}@load.invalid", f"Load GM {index}", None, gamemaster=True
        )
        bench_users.append(BenchUser(str(user.id), issue_token(session, user, "load")))
    session.commit()
    if fill:
        template = find_master_template(session)
        fill_pool(db.engine, template.id, template.user_id, master_target, lambda _label: None)
    return bench_users


class LoadLoop:
    """Clients creating campaigns in a closed loop until `stop()`, for faults injected while
    load runs. Each client is one user on its own keep-alive connection."""

    def __init__(self, stack: Stack, clients: int, label: str) -> None:
        self.stack = stack
        self.label = label
        self.stopping = threading.Event()
        self.samples: list[list[Sample]] = [[] for _ in range(clients)]
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def _run(self, index: int) -> None:
        client = self.stack.client(index)
        try:
            n = 0
            while not self.stopping.is_set():
                self.samples[index].append(client.create(f"{self.label} {index}-{n}"))
                n += 1
        finally:
            client.close()

    def __enter__(self) -> LoadLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Sample]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        return self.all()

    def all(self) -> list[Sample]:
        return [s for samples in self.samples for s in samples]

    def count(self) -> int:
        return sum(len(samples) for samples in self.samples)


def step_figures(phase: Phase, clients: int) -> dict[str, Any]:
    """One load step as the client saw it: throughput, latency of every create (pool-served or
    not: under a ramp the fallback is part of what users get), errors and pool hit rate."""
    samples = phase.samples
    ok = [s for s in samples if s.status == 201]
    latencies = sorted(s.ms for s in ok)
    served = sum(1 for s in ok if s.source in POOL_SOURCES)
    wall = phase.wall_s
    return {
        "clients": clients,
        "requests": len(samples),
        "created": len(ok),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(ok) / wall, 1) if wall > 0 else None,
        "p50_ms": percentile(latencies, 50, ndigits=1),
        "p95_ms": percentile(latencies, 95, ndigits=1),
        "p99_ms": percentile(latencies, 99, ndigits=1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "errors_5xx": sum(1 for s in samples if s.status >= 500),
        "errors_other": sum(1 for s in samples if s.status != 201 and s.status < 500),
        "pool_hit_rate": round(served / len(samples), 3) if samples else None,
        "fallbacks": sum(1 for s in ok if s.source == "seeded"),
        "first_error": next((s.error for s in samples if s.error), None),
    }
