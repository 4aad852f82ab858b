"""`bench --http`: `POST /api/v2/campaigns` under load, through gunicorn, as docs/performance.md
states it.

The seeding bench (`portal.devtools.bench`) times the services in-process; this one times what a
gamemaster's client sees: HTTP parsing, the bearer-token lookup, the pool claim, the child
timestamp reset, the JSON body with its counts and the enqueue of the refill job, all inside a
real gunicorn on a real socket. Like the seeding bench it never touches the configured database:

1. a scratch app (`scratch.scratch_app`: a new database on the same server, dropped afterwards)
   gets the master template, N gamemasters with a token each, and a master pool filled with
   exactly as many ready campaigns as the run will claim (`prepare.fill_pool`, the refill job's
   own builder), then ANALYZE (a database analysed while it held only the template plans for a
   world where every row belongs to it);
2. gunicorn starts (`processes.gunicorn_server`) on a free 127.0.0.1 port with
   `gunicorn.conf.py`, the scratch DATABASE_URL and, by default, no REDIS_URL: the refill jobs
   each create enqueues go to the server's in-process fakeredis and nobody runs them. A real
   Redis would hand them to whatever RQ worker listens there, and that worker would refill *its*
   database, so a real Redis is only used when given explicitly (`redis_url`), to include a
   real enqueue round trip;
3. a sequential phase (one client, one keep-alive connection, one create after another), then a
   burst (`load.run_burst`: C client threads, each with its own user and keep-alive connection,
   released together, K creates each, closed loop), each measured by `usage.UsageProbe`;
4. afterwards the database is checked (`assignment_check`): no campaign has two `assigned`
   events, every returned id is distinct, and every returned campaign belongs to the user who
   asked for it.

Latency percentiles are nearest-rank over pool-served creates (the targets are for
those; the pool is filled to cover the run, so normally that is every request). On two cores a
closed-loop burst's latency is clients / throughput, so throughput is the burst's figure.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from rq import Worker
from rq.job import Job
from sqlalchemy.orm import Session

from portal.appcontext import db_session
from portal.devtools.assignment_check import check_assignments
from portal.devtools.bench import require_at_least
from portal.devtools.http_client import POOL_SOURCES, Client, Reply
from portal.devtools.load import Phase, run_burst
from portal.devtools.prepare import ApiUser, create_gamemasters, fill_pool
from portal.devtools.processes import gunicorn_server
from portal.devtools.scratch import Tick, no_progress, quietly, scratch_app
from portal.devtools.usage import UsageProbe
from portal.extensions import db
from portal.models import utcnow
from portal.services.images.backend import get_image_store
from portal.services.infra.percentiles import percentile
from portal.services.template import generate_template

REFILL_JOB_KEYS = "rq:job:replenish-*"  # the ids `enqueue_replenish` gives its jobs


@dataclass(frozen=True)
class HttpBenchPlan:
    """How much load, and the server that takes it (`workers` x `threads` of gunicorn)."""

    sequential: int = 200
    clients: int = 16
    per_client: int = 25
    warmup: int = 10
    workers: int = 1
    threads: int = 16
    redis_url: str | None = None
    request_timeout_s: float = 30.0
    startup_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        require_at_least(1, self, "sequential", "clients", "per_client", "workers", "threads")
        require_at_least(0, self, "warmup")

    @property
    def burst_requests(self) -> int:
        return self.clients * self.per_client

    @property
    def total_requests(self) -> int:
        """Creates the run sends, warm-up included: the pool is filled to exactly this."""
        return self.warmup + self.sequential + self.burst_requests

    @property
    def units(self) -> int:
        """Units of work reported through `tick`: template, pool builds, server start, creates."""
        return 1 + self.total_requests + 1 + self.total_requests

    @property
    def server_label(self) -> str:
        return f"gunicorn -w {self.workers} --threads {self.threads}"


# ---------------------------------------------------------------------------- entry point


def run_http_bench(
    database_url: str, secret_key: str, plan: HttpBenchPlan, tick: Tick = no_progress
) -> dict[str, Any]:
    """Prepare a scratch database, serve it with gunicorn, load it, check it; return figures."""
    with (
        redis_guard(plan.redis_url),
        scratch_app(database_url, secret_key, "campaign-pool-bench-http-") as scratch,
    ):
        app, scratch_url = scratch.app, scratch.database_url
        with quietly(app):
            users = _prepare(db_session(), plan, tick)
            db.session.remove()
            db.engine.dispose()  # no idle connections of ours while gunicorn serves
        with gunicorn_server(
            scratch_url, secret_key, scratch.folder,
            workers=plan.workers, threads=plan.threads, redis_url=plan.redis_url,
            startup_timeout_s=plan.startup_timeout_s,
        ) as server:  # fmt: skip
            tick("server up")
            probe = UsageProbe(scratch_url, server.process.pid)
            try:
                warmup, sequential, burst = _load(server.port, users, plan, probe, tick)
            finally:
                probe.close()
        with app.app_context():
            replies = [r for phase in (warmup, sequential, burst) for r in phase.replies]
            check = check_assignments(db_session(), replies, [user.id for user in users])
            dialect = db.engine.dialect.name
            db.session.remove()
    return {
        "http": {
            "sequential": _sequential_figures(sequential),
            "burst": _burst_figures(burst, plan.clients),
            "checks": {
                "returned_ids": check.returned,
                "returned_ids_duplicated": check.returned - check.distinct,
                "assigned_events": check.assigned_events,
                "pool_served_responses": check.pool_served,
                "campaigns_assigned_twice": len(check.assigned_twice),
                "wrong_owner": len(check.wrong_owner),
            },
            "warmup_requests": len(warmup.replies),
            "server": plan.server_label,
            "redis": "real" if plan.redis_url else "in-process (no worker)",
            "database": dialect,
            "measured_at": utcnow().isoformat(timespec="seconds"),
        }
    }


# ---------------------------------------------------------------------------- preparation


def _prepare(session: Session, plan: HttpBenchPlan, tick: Tick) -> list[ApiUser]:
    """Template, one gamemaster + token per client, and a master pool covering the run."""
    template = generate_template(session, get_image_store())
    template_id, owner_id = template.id, template.user_id
    tick("template")
    users = create_gamemasters(session, plan.clients, "bench")
    fill_pool(db.engine, template_id, owner_id, plan.total_requests, tick)
    # Statistics that know the database holds many campaigns, not only the template.
    session.execute(sa.text("ANALYZE"))
    session.commit()
    return users


@contextlib.contextmanager
def redis_guard(redis_url: str | None) -> Iterator[None]:
    """With a real Redis: refuse one that RQ workers listen on (they would run the bench's refill
    jobs against their own database), before anything is built, and afterwards delete the refill
    jobs the run queued, so none is left for a worker that comes later. Without one, nothing."""
    if not redis_url:
        yield
        return
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        workers = Worker.all(connection=client)
        if workers:
            raise RuntimeError(
                f"bench: {len(workers)} RQ worker(s) listen on {redis_url}; they would run the "
                "bench's refill jobs against their own database. Use another Redis database."
            )
        before = set(client.scan_iter(match=REFILL_JOB_KEYS))
        try:
            yield
        finally:
            for key in set(client.scan_iter(match=REFILL_JOB_KEYS)) - before:
                job_id = key.decode().removeprefix("rq:job:")
                with contextlib.suppress(Exception):
                    Job.fetch(job_id, connection=client).delete()
    finally:
        client.close()


# ---------------------------------------------------------------------------- the load


def _load(
    port: int, users: list[ApiUser], plan: HttpBenchPlan, probe: UsageProbe, tick: Tick
) -> tuple[Phase, Phase, Phase]:
    run = uuid.uuid4().hex[:8]
    first = Client(port, 0, users[0].token, plan.request_timeout_s)
    try:
        warmup = _sequential(first, plan.warmup, f"warmup {run}", tick)
        with probe.measure() as usage:
            sequential = _sequential(first, plan.sequential, f"sequential {run}", tick)
        sequential.usage = usage
    finally:
        first.close()
    with probe.measure() as usage:
        # C threads, each its own user and connection (opened before the start), released at once.
        tokens = [user.token for user in users]
        burst = run_burst(
            port, tokens, plan.per_client, f"burst {run}", plan.request_timeout_s, tick
        )
    burst.usage = usage
    return warmup, sequential, burst


def _sequential(client: Client, count: int, label: str, tick: Tick) -> Phase:
    phase = Phase()
    started = time.perf_counter()
    for index in range(count):
        phase.replies.append(client.create(f"HTTP bench {label} {index}"))
        tick(label.split()[0])
    phase.wall_s = time.perf_counter() - started
    return phase


# ---------------------------------------------------------------------------- figures


def _duplicates(replies: list[Reply]) -> int:
    """Returned ids beyond their first occurrence."""
    counts = Counter(r.campaign_id for r in replies if r.campaign_id)
    return sum(n - 1 for n in counts.values() if n > 1)


def _common(phase: Phase) -> dict[str, Any]:
    replies = phase.replies
    served = sorted(r.ms for r in replies if r.status == 201 and r.source in POOL_SOURCES)
    total = len(replies)
    sources = Counter(r.source or f"status {r.status}" for r in replies)
    errors = [r.error for r in replies if r.error]
    figures: dict[str, Any] = {
        "requests": total,
        "p50_ms": percentile(served, 50, ndigits=2),
        "p95_ms": percentile(served, 95, ndigits=2),
        "p99_ms": percentile(served, 99, ndigits=2),
        "max_ms": round(served[-1], 2) if served else None,
        "pool_hit_rate": round(len(served) / total, 4) if total else None,
        "errors_5xx": sum(1 for r in replies if r.status >= 500),
        "errors_other": sum(1 for r in replies if r.status != 201 and r.status < 500),
        "duplicates": _duplicates(replies),
        "sources": dict(sorted(sources.items())),
    }
    figures.update(_per_request(phase))
    if errors:
        figures["first_error"] = errors[0]
    return figures


def _per_request(phase: Phase) -> dict[str, Any]:
    """The phase's resource usage, per create where that reads better."""
    count = len(phase.replies) or 1
    usage = phase.usage

    def per(key: str) -> float | None:
        value = usage.get(key)
        return None if value is None else round(value * 1000 / count, 2)

    return {
        "server_cpu_ms_per_request": per("server_cpu_s"),
        "database_cpu_ms_per_request": per("database_cpu_s"),
        "db_connections_opened": usage.get("db_connections_opened"),
    }


def _sequential_figures(phase: Phase) -> dict[str, Any]:
    return _common(phase)


def _burst_figures(phase: Phase, clients: int) -> dict[str, Any]:
    figures = _common(phase)
    served = sum(1 for r in phase.replies if r.status == 201 and r.source in POOL_SOURCES)
    ok = sum(1 for r in phase.replies if r.status == 201)
    wall = phase.wall_s
    return {
        "clients": clients,
        **figures,
        "wall_s": round(wall, 3),
        "throughput_rps": round(ok / wall, 1) if wall > 0 else None,
        "pool_served_rps": round(served / wall, 1) if wall > 0 else None,
    }
