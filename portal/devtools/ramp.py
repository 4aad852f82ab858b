"""`bench --http --ramp`: the 1-4-8-16 ramp with W = 1, 2, 4 refill workers, and the machine's
seeding limit, measured in one run (docs/performance.md, "The ramp").

The question it answers: once demand outruns the pool, how close do creates come to what the
machine can seed at all, and do more refill workers help? So the run measures both, on the
same database, minutes apart:

1. **A prepared database** on the configured PostgreSQL server (like every bench, a scratch one,
   dropped afterwards): the master template, one gamemaster per client with a token, the pool
   settings (`master_target`, `build_batch_size` K, `max_parallel_builds`, no user pools) and a
   master pool filled to its target, ANALYZEd.
2. **The seeding limit**: one seeder thread per core, each on its own connection, seeding
   K-campaign batches (`seed_many`, shells included) for a fixed time on a copy of that
   database: campaigns per second with every core busy. That is what refills could deliver
   if they had the machine to themselves.
3. **The ramp, once per W**: a fresh copy of the prepared database (`CREATE DATABASE ...
   TEMPLATE`, so every W starts from the same full pool and the same size), gunicorn
   (`gunicorn.conf.py`, one process, threads) and W production RQ workers on the given Redis;
   then 1, 4, 8 and 16 clients in turn, each client a gamemaster on its own keep-alive
   connection sending `per_client` creates in a closed loop, one step straight after the
   other. Per step: throughput, *sustained* throughput (creates completed in the second half
   of the step: the pool the step started with is spent by then), pool hit rate, latency of
   every create (pool-served or seeded), errors, CPU busy. Per W: the most refill builds that
   were in flight at once, read back from the `replenished` events (`build_timeline`).
   Afterwards the copy is checked (no campaign handed out twice, each to its requester) and
   dropped.

It prints one JSON object (stdout) with `seeding_limit_rps` and `ramp` (a row per W and step)
and a small table (stderr). The Redis database must have no RQ workers of its own
(`redis_guard`): the bench starts its own there and empties its queues between Ws.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from portal.devtools.assignment_check import check_assignments
from portal.devtools.bench_http import redis_guard
from portal.devtools.http_client import POOL_SOURCES, Client, Reply
from portal.devtools.load import run_closed_loop
from portal.devtools.prepare import ApiUser, create_gamemasters
from portal.devtools.processes import gunicorn_server, rq_worker
from portal.devtools.scratch import (
    NOISY_LOGGERS,
    Tick,
    build_scratch_app,
    postgres_database,
    quiet_loggers,
    scratch_database,
)
from portal.models import Campaign, User, utcnow
from portal.services.infra.percentiles import percentile

log = logging.getLogger("portal.bench")

WORKER_QUEUES = ("seeding", "default")


@dataclass(frozen=True)
class RampPlan:
    """The ramp's shape. `redis_url` is required: refills need real workers."""

    redis_url: str
    workers: tuple[int, ...] = (1, 2, 4)
    clients: tuple[int, ...] = (1, 4, 8, 16)
    per_client: int = 20
    pool_target: int = 50
    batch_size: int = 10
    max_parallel: int = 10
    limit_seconds: float = 10.0
    # Seeder threads of the limit run: one per core, then twice that (a seeder leaves its core
    # idle while its client side works); the limit is the better of the two.
    seeders: tuple[int, ...] = field(
        default_factory=lambda: ((os.cpu_count() or 2), 2 * (os.cpu_count() or 2))
    )
    threads: int = 16
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.redis_url:
            raise ValueError("the ramp needs --redis-url: refills run on real RQ workers")
        for name in ("per_client", "pool_target", "batch_size", "max_parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.seeders or min(self.seeders) < 1:
            raise ValueError("seeders must be whole numbers of at least 1")
        if not self.workers or min(self.workers) < 1:
            raise ValueError("workers must be whole numbers of at least 1")
        if not self.clients or min(self.clients) < 1:
            raise ValueError("clients must be whole numbers of at least 1")
        if self.limit_seconds <= 0:
            raise ValueError("limit_seconds must be positive")

    @property
    def units(self) -> int:
        """Progress units: preparation, each limit run, then per W a start and every create."""
        creates = sum(self.clients) * self.per_client
        return 1 + len(self.seeders) + len(self.workers) * (1 + creates)


@dataclass
class Timed:
    """One create, and when it ended counted from the start of its step (seconds)."""

    reply: Reply
    ended: float


# ---------------------------------------------------------------------------- entry point


def run_ramp(
    database_url: str, secret_key: str, plan: RampPlan, tick: Tick | None = None
) -> dict[str, Any]:
    """Prepare, measure the seeding limit, run the ramp per W; return the figures."""
    if make_url(database_url).get_backend_name() != "postgresql":
        raise RuntimeError("the ramp measures PostgreSQL: set DATABASE_URL to a PostgreSQL server")
    tick = tick or (lambda _label: None)
    load_before = os.getloadavg()
    psutil.cpu_percent(interval=None)
    workdir = Path(tempfile.mkdtemp(prefix="campaign-pool-ramp-"))
    try:
        with redis_guard(plan.redis_url), scratch_database(database_url, workdir) as prepared:
            users = _prepare(prepared, secret_key, plan, workdir)
            tick("prepared")
            runs = []
            for seeders in plan.seeders:
                with _copy(prepared, f"limit{seeders}") as url:
                    runs.append(seeding_limit(url, plan, seeders))
                tick("seeding limit")
            limit = {**max(runs, key=lambda r: r["campaigns_per_s"] or 0), "runs": runs}
            ramp: list[dict[str, Any]] = []
            per_worker: dict[str, Any] = {}
            for workers in plan.workers:
                with _copy(prepared, f"w{workers}") as url:
                    rows, extra = _ramp_once(url, secret_key, plan, users, workers, workdir, tick)
                ramp += rows
                per_worker[str(workers)] = extra
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    limit_rps = limit["campaigns_per_s"]
    sixteen = {row["workers"]: row for row in ramp if row["clients"] == max(plan.clients)}
    return {
        "seeding_limit_rps": limit_rps,
        "seeding_limit": limit,
        "ramp": ramp,
        "workers": per_worker,
        "summary": {
            f"w{w}": {
                "clients": row["clients"],
                "sustained_rps": row["sustained_rps"],
                "vs_seeding_limit": round(row["sustained_rps"] / limit_rps, 3)
                if limit_rps and row["sustained_rps"] is not None
                else None,
            }
            for w, row in sorted(sixteen.items())
        },
        "plan": {
            "workers": list(plan.workers),
            "clients": list(plan.clients),
            "per_client": plan.per_client,
            "pool_target": plan.pool_target,
            "batch_size": plan.batch_size,
            "max_parallel_builds": plan.max_parallel,
            "server": f"gunicorn -w 1 --threads {plan.threads}",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "database": "postgresql",
        "measured_at": utcnow().isoformat(timespec="seconds"),
    }


def table(figures: dict[str, Any]) -> str:
    """The small text table of a ramp run."""
    limit = figures["seeding_limit"]
    runs = ", ".join(f"{r['seeders']} seeders {r['campaigns_per_s']}/s" for r in limit["runs"])
    lines = [
        f"seeding limit: {figures['seeding_limit_rps']} campaigns/s (K={limit['batch']}; "
        f"{runs}; CPU {limit['cpu_busy_pct']}% in the best)",
        "",
        "W  clients  creates/s  sustained/s  hit rate  p50 ms  p95 ms  p99 ms  errors  CPU %",
    ]
    for row in figures["ramp"]:
        lines.append(
            f"{row['workers']:<2} {row['clients']:>7}  {_num(row['throughput_rps']):>9}  "
            f"{_num(row['sustained_rps']):>11}  {_num(row['pool_hit_rate']):>8}  "
            f"{_num(row['p50_ms']):>6}  {_num(row['p95_ms']):>6}  {_num(row['p99_ms']):>6}  "
            f"{row['errors']:>6}  {_num(row['cpu_busy_pct']):>5}"
        )
    lines.append("")
    for w, extra in figures["workers"].items():
        lines.append(
            f"W={w}: most builds in flight {extra['max_builds_in_flight']}, "
            f"{extra['builds']} builds of {extra['campaigns_built']} campaigns "
            f"(largest {extra['largest_batch']}), checks {extra['checks']}"
        )
    machine = figures["machine"]
    lines.append(
        f"load average before {machine['load_average_before']}, "
        f"after {machine['load_average_after']}"
    )
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value}"


# ---------------------------------------------------------------------------- databases


def _prepare(url: str, secret_key: str, plan: RampPlan, workdir: Path) -> list[ApiUser]:
    """Template, gamemasters with tokens, pool settings, a full master pool, statistics."""
    from flask_migrate import upgrade

    from portal.appcontext import db_session
    from portal.extensions import db
    from portal.services.images.backend import get_image_store
    from portal.services.infra.queue import get_redis
    from portal.services.pool.config import set_pool_settings
    from portal.services.pool.replenish import replenish_pool
    from portal.services.template import generate_template

    app = build_scratch_app(url, workdir / "instance", secret_key)
    try:
        with app.app_context(), quiet_loggers(*NOISY_LOGGERS):
            upgrade()
            session = db_session()
            generate_template(session, get_image_store())
            users = create_gamemasters(session, max(plan.clients), "ramp")
            settings = app.config["SETTINGS"]
            set_pool_settings(
                session,
                settings,
                {
                    "master_target": plan.pool_target,
                    "user_target": 0,
                    "max_size": max(50, plan.pool_target),
                    "build_batch_size": plan.batch_size,
                    "max_parallel_builds": plan.max_parallel,
                },
            )
            session.commit()
            report = replenish_pool(session, get_redis(app), settings, "master")
            if len(report.built) < plan.pool_target:
                raise RuntimeError(f"ramp: filling the pool failed: {report.as_dict()}")
            session.execute(sa.text("ANALYZE"))
            session.commit()
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
    return users


@contextlib.contextmanager
def _copy(source_url: str, label: str) -> Iterator[str]:
    """A copy of the prepared database (`CREATE DATABASE ... TEMPLATE`), dropped afterwards."""
    url = make_url(source_url)
    with postgres_database(url, f"{url.database}_{label}"[:63], template=url.database) as copy:
        yield copy


# ---------------------------------------------------------------------------- the limit


def seeding_limit(url: str, plan: RampPlan, seeders: int) -> dict[str, Any]:
    """Campaigns per second with `seeders` seeder threads, each on its own connection, seeding
    K-campaign batches, shells included, for `plan.limit_seconds` after one warm-up batch
    each: the machine's rate of making campaigns when nothing else runs."""
    from portal.services.campaigns.records import create_campaign_shell, find_master_template
    from portal.services.seeding.batch import CampaignBatchSeeder

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with Session(engine) as session:
        template = find_master_template(session)
        assert template is not None
        template_id, owner_id = template.id, template.user_id
    clock = {"started": 0.0, "deadline": 0.0}

    def start_clock() -> None:  # run once, when every seeder is warm, before any is released
        clock["started"] = time.monotonic()
        clock["deadline"] = clock["started"] + plan.limit_seconds
        psutil.cpu_percent(interval=None)

    barrier = threading.Barrier(seeders + 1, action=start_clock)
    done: list[tuple[float, int]] = []
    batches: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def seed(session: Session, template: Campaign, owner: User) -> float:
        shells = [
            create_campaign_shell(session, owner, f"limit {uuid.uuid4().hex[:12]}")
            for _ in range(plan.batch_size)
        ]
        session.commit()
        started = time.perf_counter()
        CampaignBatchSeeder(session).seed_many(shells, template)
        session.expunge_all()
        return (time.perf_counter() - started) * 1000

    def work() -> None:
        try:
            with Session(engine) as session:
                template = session.get(Campaign, template_id)
                owner = session.get(User, owner_id)
                assert template is not None and owner is not None
                seed(session, template, owner)  # warm-up: statements prepared, map created
                barrier.wait(timeout=120)
                while time.monotonic() < clock["deadline"]:
                    template = session.get(Campaign, template_id)
                    owner = session.get(User, owner_id)
                    assert template is not None and owner is not None
                    ms = seed(session, template, owner)
                    with lock:
                        done.append((time.monotonic(), plan.batch_size))
                        batches.append(ms)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(seeders)]
    with quiet_loggers("portal"):
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=300)
        for thread in threads:
            thread.join()
        cpu = psutil.cpu_percent(interval=None)
    engine.dispose()
    if errors:
        raise RuntimeError(f"ramp: the seeding limit run failed: {errors[0]!r}") from errors[0]
    started = clock["started"]
    ended = max((t for t, _ in done), default=started)
    campaigns = sum(n for _, n in done)
    wall = ended - started
    return {
        "campaigns_per_s": round(campaigns / wall, 1) if wall > 0 else None,
        "campaigns": campaigns,
        "seconds": round(wall, 2),
        "seeders": seeders,
        "batch": plan.batch_size,
        "batch_ms_median": round(statistics.median(batches), 1) if batches else None,
        "cpu_busy_pct": round(cpu, 1),
    }


# ---------------------------------------------------------------------------- one W


def _ramp_once(
    url: str,
    secret_key: str,
    plan: RampPlan,
    users: list[ApiUser],
    workers: int,
    workdir: Path,
    tick: Tick,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """gunicorn and `workers` workers on a copy of the prepared database, then the steps."""
    run_dir = workdir / f"w{workers}"
    run_dir.mkdir()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows: list[dict[str, Any]] = []
    try:
        since = utcnow()
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(
                gunicorn_server(
                    url, secret_key, run_dir, threads=plan.threads, redis_url=plan.redis_url
                )
            )
            port = server.port
            for index in range(workers):
                name = f"ramp-w{workers}-{index}-{uuid.uuid4().hex[:6]}"
                stack.enter_context(rq_worker(plan.redis_url, run_dir, name, env=server.env))
            tick(f"W={workers} up")
            for clients in plan.clients:
                ready = _ready(engine)
                psutil.cpu_percent(interval=None)
                timed, wall = _step(port, users[:clients], plan, f"w{workers} x{clients}", tick)
                cpu = psutil.cpu_percent(interval=None)
                rows.append(
                    {
                        "workers": workers,
                        **_step_figures(timed, wall, clients),
                        "pool_ready_at_start": ready,
                        "cpu_busy_pct": round(cpu, 1),
                    }
                )
        _empty_queues(plan.redis_url)
        with Session(engine) as session:
            from portal.services.pool.status import build_timeline

            timeline = build_timeline(session, since)
            checks = _checks(session, users, rows)
    finally:
        engine.dispose()
    for row in rows:
        row.pop("_replies", None)
    return rows, {
        "max_builds_in_flight": timeline["max_in_flight"],
        "builds": timeline["builds"],
        "campaigns_built": timeline["campaigns"],
        "largest_batch": timeline["largest_batch"],
        "checks": checks,
    }


def _ready(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.count()).where(
                    Campaign.is_pool.is_(True),
                    Campaign.pool_type == "master",
                    Campaign.pool_status == "ready",
                )
            )
            or 0
        )


def _step(
    port: int, users: list[ApiUser], plan: RampPlan, label: str, tick: Tick
) -> tuple[list[Timed], float]:
    """One closed-loop step: a thread per user, released together, `per_client` creates each,
    every create kept with the moment it ended."""
    clients = [Client(port, i, u.token, plan.request_timeout_s) for i, u in enumerate(users)]
    results: list[list[Timed]] = [[] for _ in clients]
    tick_lock = threading.Lock()

    def work(index: int, client: Client) -> None:
        for n in range(plan.per_client):
            reply = client.create(f"Ramp {label} {index}-{n}")
            results[index].append(Timed(reply, time.monotonic()))
            with tick_lock:
                tick(label)

    started, wall = run_closed_loop(clients, work)
    timed = [t for batch in results for t in batch]
    for t in timed:
        t.ended -= started
    return timed, wall


def _step_figures(timed: list[Timed], wall: float, clients: int) -> dict[str, Any]:
    replies = [t.reply for t in timed]
    ok = [t for t in timed if t.reply.status == 201]
    latencies = sorted(t.reply.ms for t in ok)
    served = sum(1 for t in ok if t.reply.source in POOL_SOURCES)
    half = wall / 2
    late = [t for t in ok if t.ended >= half]
    return {
        "clients": clients,
        "requests": len(replies),
        "throughput_rps": round(len(ok) / wall, 1) if wall > 0 else None,
        "sustained_rps": round(len(late) / (wall - half), 1) if wall > 0 else None,
        "pool_hit_rate": round(served / len(replies), 3) if replies else None,
        "sustained_hit_rate": (
            round(sum(1 for t in late if t.reply.source in POOL_SOURCES) / len(late), 3)
            if late
            else None
        ),
        "p50_ms": percentile(latencies, 50, ndigits=1),
        "p95_ms": percentile(latencies, 95, ndigits=1),
        "p99_ms": percentile(latencies, 99, ndigits=1),
        "errors": sum(1 for r in replies if r.status != 201),
        "wall_s": round(wall, 2),
        "_replies": replies,
    }


def _checks(session: Session, users: list[ApiUser], rows: list[dict[str, Any]]) -> dict[str, int]:
    """Handed out twice? To someone else? (the database's word, not the responses')."""
    replies = [r for row in rows for r in row.get("_replies", [])]
    check = check_assignments(session, replies, [user.id for user in users])
    return {
        "returned": check.returned,
        "distinct": check.distinct,
        "assigned_twice": len(check.assigned_twice),
        "wrong_owner": len(check.wrong_owner),
    }


def _empty_queues(redis_url: str) -> None:
    """Drop jobs the Ws left queued, so the next W's workers do not start with them."""
    import redis
    from rq import Queue

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for name in WORKER_QUEUES:
            Queue(name, connection=client).empty()
    finally:
        client.close()
