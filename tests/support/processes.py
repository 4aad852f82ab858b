"""The production shape, as real processes, for the load and fault tests.

A `Stack` is `portal.devtools.processes.LocalStack` (gunicorn and `rq worker --with-scheduler
--worker-class jobs.worker.AppWorker` processes, each in its own process group, stopped whatever
the test did) on a private copy of the template database (PostgreSQL) and a Redis, plus what a
test needs around it: an in-process app on the same database and Redis to prepare (users,
tokens, pool settings, a filled pool) and to check afterwards (`check_assignments`: every
returned campaign verifies, belongs to its requester, nothing was handed out twice), never to
serve.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.devtools.assignment_check import AssignmentCheck, check_assignments
from portal.devtools.http_client import POOL_SOURCES, Client, Reply, request_json
from portal.devtools.load import Phase
from portal.devtools.prepare import ApiUser, create_gamemasters, fill_pool
from portal.devtools.processes import (
    PROJECT_ROOT,
    LocalStack,
    gunicorn_server,
    log_tail,
    spawn,
    stop_process_group,
    wait_until,
)
from portal.extensions import db
from portal.models import Campaign
from portal.services.campaigns.records import find_master_template
from portal.services.infra.percentiles import percentile
from portal.services.pool.config import set_pool_setting
from tests.conftest import TEST_HEALTH_TOKEN, TEST_SECRET, flush_redis, make_app
from tests.support.databases import TestDatabases

WEB_THREADS = 16


def require_redis(redis_url: str) -> str:
    """The shared test Redis (the `redis_url` fixture, TEST_REDIS_URL), or skip the test."""
    if not redis_url:
        pytest.skip("needs a real Redis: set TEST_REDIS_URL")
    return redis_url


class Stack(LocalStack):
    """The running processes, the test's app on their database, and their users."""

    def __init__(
        self,
        app: Flask,
        users: list[ApiUser],
        database_url: str,
        redis_url: str,
        workdir: Path,
        extra_env: dict[str, str],
        servers: int = 1,
    ) -> None:
        super().__init__(
            database_url, TEST_SECRET, redis_url, workdir, threads=WEB_THREADS, extra_env=extra_env
        )
        self.app = app
        self.users = users
        self.servers = servers
        # Every web instance's port (`port` is the first): a scaled-out stack has several.
        self.ports: list[int] = []

    def __enter__(self) -> Stack:
        super().__enter__()
        self.ports = [self.port]
        try:
            for index in range(1, self.servers):
                workdir = self.workdir / f"web-{index}"
                workdir.mkdir(exist_ok=True)
                server = self.exits.enter_context(
                    gunicorn_server(
                        self.database_url, TEST_SECRET, workdir, threads=self.threads,
                        redis_url=self.redis_url, extra_env=self.extra_env,
                    )
                )  # fmt: skip
                self.ports.append(server.port)
        except BaseException:
            self.exits.close()
            raise
        return self

    def start_scheduler(self) -> None:
        """The one `rq cron` of the deployment; stopped with the stack."""
        assert self.server is not None
        self.exits.enter_context(rq_cron(self.server.env, self.redis_url, self.workdir))

    @property
    def tokens(self) -> list[str]:
        return [user.token for user in self.users]

    # ---------------------------------------------------------------- HTTP

    def client(self, user_index: int, timeout_s: float = 60.0, server: int = 0) -> Client:
        port = self.ports[server] if self.ports else self.port
        return Client(port, user_index, self.users[user_index].token, timeout_s)

    def health(self, server: int = 0) -> tuple[int, dict[str, Any]]:
        port = self.ports[server] if self.ports else self.port
        health = {"X-Health-Token": TEST_HEALTH_TOKEN}  # the details need it
        return request_json(port, "GET", "/health", headers=health, timeout_s=10)

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

    def check(self, replies: list[Reply]) -> AssignmentCheck:
        """What the database says about every create that returned a campaign, each one
        verified against the template as well (`check_assignments`)."""
        with self.app.app_context():
            user_ids = [user.id for user in self.users]
            check = check_assignments(db.session, replies, user_ids, verify=True)
            db.session.remove()
            return check


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
    instances on the same database and Redis (docs/running.md, "Scaling out"), with
    `scheduler` the one `rq cron` process. Everything is stopped and dropped at the end."""
    url = databases.clone(template_golden, "load")
    flush_redis(redis_url)
    app = make_app(url, redis_url)
    try:
        with app.app_context():
            api_users = _prepare(master_target, users, fill)
            db.session.remove()
            db.engine.dispose()
        # /health's details (checks) are for HEALTH_TOKEN holders; the public answer is the status.
        extra = {"HEALTH_TOKEN": TEST_HEALTH_TOKEN, **(env or {})}
        with Stack(app, api_users, url, redis_url, tmp_path, extra, servers) as stack:
            for _ in range(workers):
                stack.start_worker()
            if scheduler:
                stack.start_scheduler()
            yield stack
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


@contextlib.contextmanager
def rq_cron(
    env: dict[str, str], redis_url: str, workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The one scheduler of a deployment (docs/operations.md: `rq cron jobs.cron_config`), in
    its own process group, until the block ends; yielded once it has registered."""
    import os
    import sys

    import redis
    from rq.cron import CronScheduler

    child_env = dict(env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    log_path = workdir / "rq-cron.log"
    command = [sys.executable, "-m", "rq.cli", "cron", "jobs.cron_config", "--url", redis_url]
    process = spawn(command, cwd=workdir, env=child_env, log_path=log_path)
    client = redis.Redis.from_url(redis_url)
    try:

        def registered() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"rq cron exited:\n{log_tail(log_path)}")
            return bool(CronScheduler.all(client))

        wait_until(registered, 60, "rq cron to register")
        yield process
    finally:
        client.close()
        stop_process_group(process)


def _prepare(master_target: int, users: int, fill: bool) -> list[ApiUser]:
    session = db.session
    set_pool_setting(session, "master_target", master_target)
    set_pool_setting(session, "user_target", 0)
    api_users = create_gamemasters(session, users, "load")
    if fill:
        template = find_master_template(session)
        fill_pool(db.engine, template.id, template.user_id, master_target)
    return api_users


def step_figures(phase: Phase, clients: int) -> dict[str, Any]:
    """One load step as the client saw it: throughput, latency of every create (pool-served or
    not: under a ramp the fallback is part of what users get), errors and pool hit rate."""
    replies = phase.replies
    ok = [r for r in replies if r.status == 201]
    latencies = sorted(r.ms for r in ok)
    served = sum(1 for r in ok if r.source in POOL_SOURCES)
    wall = phase.wall_s
    return {
        "clients": clients,
        "requests": len(replies),
        "created": len(ok),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(ok) / wall, 1) if wall > 0 else None,
        "p50_ms": percentile(latencies, 50, ndigits=1),
        "p95_ms": percentile(latencies, 95, ndigits=1),
        "p99_ms": percentile(latencies, 99, ndigits=1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "errors_5xx": sum(1 for r in replies if r.status >= 500),
        "errors_other": sum(1 for r in replies if r.status != 201 and r.status < 500),
        "pool_hit_rate": round(served / len(replies), 3) if replies else None,
        "fallbacks": sum(1 for r in ok if r.source == "seeded"),
        "first_error": next((r.error for r in replies if r.error), None),
    }
