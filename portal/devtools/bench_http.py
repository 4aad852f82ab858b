"""`bench --http`: `POST /api/v2/campaigns` under load, through gunicorn, as docs/performance.md
states it.

The seeding bench (`portal.devtools.bench`) times the services in-process; this one times what a
gamemaster's client sees: HTTP parsing, the bearer-token lookup, the pool claim, the child
timestamp reset, the JSON body with its counts and the enqueue of the refill job, all inside a
real gunicorn on a real socket. Like the seeding bench it never touches the configured database:

1. a scratch database (the seeding bench's `scratch_database`, same server, dropped afterwards)
   is migrated, the master template generated, N gamemasters created with a token each, and the
   master pool filled with exactly as many ready campaigns as the run will claim (built with
   `build_pool_campaign`, the refill job's own builder), then ANALYZEd (a database analysed while
   it held only the template plans for a world where every row belongs to it);
2. gunicorn starts as a subprocess on a free 127.0.0.1 port with `gunicorn.conf.py`, the scratch
   DATABASE_URL and, by default, no REDIS_URL: the refill jobs each create enqueues go to the
   server's in-process fakeredis and nobody runs them. A real Redis would hand them to whatever
   RQ worker listens there, and that worker would refill *its* database, so a real Redis is only
   used when given explicitly (`redis_url`), to include a real enqueue round trip;
3. a sequential phase (one client, one keep-alive connection, one create after another), then a
   burst (C client threads, each with its own user and keep-alive connection, released together,
   K creates each, closed loop: a client sends its next request when the previous one returns);
4. afterwards the database is checked: no campaign has two `assigned` events, every returned id
   is distinct, and every returned campaign belongs to the user who asked for it.

Latency percentiles are nearest-rank over pool-served creates (the targets are for
those; the pool is filled to cover the run, so normally that is every request). On two cores a
closed-loop burst's latency is clients / throughput, so throughput is the burst's figure.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from portal.devtools.bench import Tick, _quiet, build_scratch_app, scratch_database
from portal.models import Campaign, PoolEvent, utcnow
from portal.services.infra.percentiles import percentile

log = logging.getLogger("portal.bench")

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})
STATS_FLUSH_S = 1.1
FILL_BUILDERS = 2
REFILL_JOB_KEYS = "rq:job:replenish-*"  # the ids `enqueue_replenish` gives its jobs
POOL_SOURCES = ("user_pool", "master_pool")
CREATE_PATH = "/api/v2/campaigns"


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
        for name in ("sequential", "clients", "per_client", "workers", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.warmup < 0:
            raise ValueError("warmup must not be negative")

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


@dataclass
class Sample:
    """One create as the client saw it."""

    user: int  # index of the requesting user
    ms: float
    status: int  # 0: no HTTP response (connection error, timeout)
    campaign_id: str | None = None
    source: str | None = None
    gamemaster_id: str | None = None
    error: str | None = None


@dataclass
class Phase:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    usage: dict[str, float | None] = field(default_factory=dict)


# ---------------------------------------------------------------------------- entry point


def run_http_bench(
    database_url: str, secret_key: str, plan: HttpBenchPlan, tick: Tick | None = None
) -> dict[str, Any]:
    """Prepare a scratch database, serve it with gunicorn, load it, check it; return figures."""
    from flask_migrate import upgrade

    tick = tick or (lambda _label: None)
    workdir = Path(tempfile.mkdtemp(prefix="campaign-pool-bench-http-"))
    try:
        with redis_guard(plan.redis_url), scratch_database(database_url, workdir) as scratch_url:
            app = build_scratch_app(scratch_url, workdir / "instance", secret_key)
            try:
                with app.app_context(), _quiet("portal", "jobs", "alembic"):
                    from portal.extensions import db

                    upgrade()
                    users = _prepare(db.session, plan, tick)
                    db.session.remove()
                    db.engine.dispose()  # no idle connections of ours while gunicorn serves
                with gunicorn_server(scratch_url, secret_key, plan, workdir) as (port, pgid):
                    tick("server up")
                    probe = UsageProbe(scratch_url, pgid)
                    try:
                        warmup, sequential, burst = _load(port, users, plan, probe, tick)
                    finally:
                        probe.close()
                with app.app_context():
                    from portal.extensions import db

                    checks = _check(db.session, users, [warmup, sequential, burst])
                    dialect = db.engine.dialect.name
                    db.session.remove()
            finally:
                with app.app_context():
                    from portal.extensions import db

                    db.engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "http": {
            "sequential": _sequential_figures(sequential),
            "burst": _burst_figures(burst, plan.clients),
            "checks": checks,
            "warmup_requests": len(warmup.samples),
            "server": plan.server_label,
            "redis": "real" if plan.redis_url else "in-process (no worker)",
            "database": dialect,
            "measured_at": utcnow().isoformat(timespec="seconds"),
        }
    }


# ---------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class BenchUser:
    id: str
    token: str


def _prepare(session: Session, plan: HttpBenchPlan, tick: Tick) -> list[BenchUser]:
    """Template, one gamemaster + token per client, and a master pool covering the run."""
    from portal.services.accounts.tokens import issue_token
    from portal.services.accounts.users import create_user
    from portal.services.images.backend import get_image_store
    from portal.services.template import generate_template

    template = generate_template(session, get_image_store())
    template_id, owner_id = template.id, template.user_id
    tick("template")
    users: list[BenchUser] = []
    for index in range(plan.clients):
        label = uuid.uuid4().hex[:8]
        user = create_user(
            session, f"bench-gm-{index}-{label}@bench.invalid", f"Bench GM {index}", None,
            gamemaster=True,
        )  # fmt: skip
        users.append(BenchUser(str(user.id), issue_token(session, user, "bench")))
    session.commit()
    engine = session.get_bind()
    # SQLite has one writer at a time: a second builder would only wait for the lock.
    builders = FILL_BUILDERS if engine.dialect.name == "postgresql" else 1
    fill_pool(engine, template_id, owner_id, plan.total_requests, tick, builders)
    # Statistics that know the database holds many campaigns, not only the template.
    session.execute(sa.text("ANALYZE"))
    session.commit()
    return users


def fill_pool(
    engine: sa.Engine,
    template_id: uuid.UUID,
    owner_id: uuid.UUID,
    count: int,
    tick: Tick,
    builders: int = FILL_BUILDERS,
) -> None:
    """Build `count` ready master-pool campaigns with the refill job's own builder.

    Filling is most of a bench run's time and the batch seed is mostly server work, so two
    builders (one per core), each with its own session, take about half as long as one. Builds
    of different campaigns touch no common row, so they cannot conflict."""
    from portal.services.pool.replenish import build_pool_campaign

    remaining = iter(range(count))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def build() -> None:
        with Session(engine) as session:
            while not failures:
                with lock:
                    if next(remaining, None) is None:
                        return
                try:
                    template = session.get(Campaign, template_id)
                    build_pool_campaign(session, template, "master", owner_id)
                except BaseException as exc:  # surfaced below, in the caller's thread
                    failures.append(exc)
                    return
                session.expunge_all()
                with lock:
                    tick("pool build")

    threads = [threading.Thread(target=build, daemon=True) for _ in range(max(1, builders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"bench: building the pool failed: {failures[0]!r}") from failures[0]


# ---------------------------------------------------------------------------- the server


@contextlib.contextmanager
def redis_guard(redis_url: str | None) -> Iterator[None]:
    """With a real Redis: refuse one that RQ workers listen on (they would run the bench's refill
    jobs against their own database), before anything is built, and afterwards delete the refill
    jobs the run queued, so none is left for a worker that comes later. Without one, nothing."""
    if not redis_url:
        yield
        return
    import redis
    from rq import Worker
    from rq.job import Job

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


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    database_url: str,
    secret_key: str,
    plan: HttpBenchPlan,
    port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The process environment of the bench's gunicorn: the scratch database, and nothing that
    reaches an outside service (no ImageKit, mail, Slack; Redis only when given). `extra` lets
    a caller (the load and fault tests) add settings such as pool sizes on top."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": plan.redis_url or "",
            "SECRET_KEY": secret_key,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_THREADS": str(plan.threads),
            "IMAGEKIT_PRIVATE_KEY": "",
            "IMAGEKIT_PUBLIC_KEY": "",
            "IMAGEKIT_URL_ENDPOINT": "",
            "IMAGEKIT_BASE_URL": "",
            "IMAGE_SHARING": "share",
            "MAIL_SERVER": "",
            "ALERT_EMAILS": "",
            "SLACK_WEBHOOK_URL": "",
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def gunicorn_server(
    database_url: str,
    secret_key: str,
    plan: HttpBenchPlan,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[tuple[int, int]]:
    """Run `gunicorn -c gunicorn.conf.py wsgi:app` on 127.0.0.1 until the block ends; yield
    (port, process group id) once `/health` answers. The server runs in its own process group,
    in `workdir` (so its `instance/` folder is the bench's, not the project's), and the whole
    group is stopped afterwards whatever happened; its output goes to `workdir/gunicorn.log`."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
        "--pythonpath", str(PROJECT_ROOT),
        "-w", str(plan.workers), "--threads", str(plan.threads),
        "-b", f"127.0.0.1:{port}",
        "wsgi:app",
    ]  # fmt: skip
    log_path = workdir / "gunicorn.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=server_env(database_url, secret_key, plan, port, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_up(process, port, plan.startup_timeout_s, log_path)
            yield port, process.pid
        finally:
            stop_process_group(process)


def wait_until_up(process: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> None:
    """Return once the server on `port` answers `/health` with anything but a 5xx; raise with
    the tail of its log if it exits or stays silent for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{log_tail(log_path)}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {timeout_s:.0f} s:\n{log_tail(log_path)}")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (graceful), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


WORKER_QUEUES = ("seeding", "default")


@contextlib.contextmanager
def rq_worker(
    env: Mapping[str, str],
    redis_url: str,
    workdir: Path,
    name: str,
    startup_timeout_s: float = 60.0,
) -> Iterator[subprocess.Popen]:
    """Run the production worker (docs/running.md: `rq worker --with-scheduler --worker-class
    jobs.worker.AppWorker seeding default`) until the block ends; yield its process once it has
    registered in Redis under `name`.

    Like `gunicorn_server` it runs in `workdir` in its own process group (the worker, RQ's
    scheduler child and the work horse of the current job), so a test can SIGKILL the whole
    group as a dying host would, and the group is stopped afterwards whatever happened. `env` is
    the web process's environment (`server_env`): a worker must see the same database and
    Redis. Output goes to `workdir/<name>.log`."""
    from redis import Redis
    from rq import Worker

    command = [
        sys.executable, "-m", "rq.cli", "worker", "--with-scheduler",
        "--worker-class", "jobs.worker.AppWorker",
        "--url", redis_url, "--name", name, *WORKER_QUEUES,
    ]  # fmt: skip
    # The project first on the import path, ahead of whatever path the caller passes on.
    child_env = dict(env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            try:
                deadline = time.monotonic() + startup_timeout_s
                while name not in {w.name for w in Worker.all(connection=client)}:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"rq worker exited ({process.returncode}):\n{log_tail(log_path)}"
                        )
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"rq worker did not register:\n{log_tail(log_path)}")
                    time.sleep(0.1)
            finally:
                client.close()
            yield process
        finally:
            horses = _descendants(process.pid)  # in sessions of their own: not in the group
            stop_process_group(process)
            for pid in horses:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> list[int]:
    """Signal a process started here in its own group (gunicorn, a worker), its group and every
    descendant at once, and reap it: with SIGKILL, what a host losing power does to them.

    Descendants are looked up separately because an RQ work horse calls setsid(): it is not in
    its worker's process group, and a signal to the group alone leaves it running the job.
    Returns the pids signalled."""
    pids = [process.pid, *_descendants(process.pid)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    for pid in pids[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    process.wait(timeout=15)
    return pids


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren ... of `pid` (from /proc: field [1] of stat is the parent)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# ---------------------------------------------------------------------------- resource usage


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], pgrp [2], utime [11],
    stime [12]); None when the process is gone or there is no /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def _cpu_s(fields: list[str] | None) -> float:
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _group_pids(pgid: int) -> list[int]:
    """Processes of a process group (gunicorn's master and workers)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres")
    except OSError:
        return False


class UsageProbe:
    """CPU the server's processes and the scratch database's backends spend during a phase, and
    the database connections opened meanwhile.

    On two cores the CPU per create bounds throughput whatever the latency (100 creates/s leaves
    20 ms of CPU per create, both processes together), so a burst that misses its rate is
    explained by these figures, not guessed at. Linux only (/proc); the database's CPU only when
    PostgreSQL runs on this host, and only of backends alive at the end of the phase (a backend
    that connected and left meanwhile is counted in `db_connections_opened`, not in CPU)."""

    def __init__(self, database_url: str, server_pgid: int) -> None:
        url = make_url(database_url)
        self.pgid = server_pgid
        self.postgres = url.get_backend_name() == "postgresql"
        self.local_db = self.postgres and (url.host or "localhost") in LOCAL_HOSTS
        self.has_proc = Path("/proc/self/stat").exists()
        self.engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        # One connection held for the whole load, so snapshots open no sessions of their own.
        self.conn = self.engine.connect() if self.postgres else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.engine.dispose()

    def _snapshot(self) -> tuple[float | None, dict[int, float], int | None]:
        server = (
            sum(_cpu_s(_proc_stat(p)) for p in _group_pids(self.pgid)) if self.has_proc else None
        )
        backends: dict[int, float] = {}
        sessions = None
        if self.conn is not None:
            self.conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            sessions = self.conn.scalar(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
            if self.has_proc and self.local_db:
                pids = self.conn.scalars(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                backends = {p: _cpu_s(_proc_stat(p)) for p in pids if _is_postgres(p)}
        return server, backends, sessions

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float | None]]:
        """Fill the yielded dict with what the block cost: server_cpu_s, database_cpu_s,
        db_connections_opened (None where it cannot be known)."""
        usage: dict[str, float | None] = {}
        server0, backends0, sessions0 = self._snapshot()
        yield usage
        if self.postgres:
            time.sleep(STATS_FLUSH_S)  # backends report their statistics about once a second
        server1, backends1, sessions1 = self._snapshot()
        usage["server_cpu_s"] = None if server0 is None else round(server1 - server0, 3)
        usage["database_cpu_s"] = (
            round(sum(cpu - backends0.get(pid, 0.0) for pid, cpu in backends1.items()), 3)
            if self.has_proc and self.local_db
            else None
        )
        usage["db_connections_opened"] = (
            None if sessions0 is None or sessions1 is None else sessions1 - sessions0
        )


# ---------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class Exchange:
    """One create request as it went over the wire, on the monotonic clock: status 0 and
    `error` when no HTTP answer came at all."""

    started: float
    ended: float
    status: int
    raw: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive when answered
    error: str | None = None

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


class Client:
    """One API client: one user's token, one keep-alive connection, reconnecting after an
    error. `exchange` is the request as sent and answered (the fault tests read its headers
    and body); `create` is what the bench and the load test record of it."""

    def __init__(self, port: int, user_index: int, token: str, timeout_s: float) -> None:
        self.port = port
        self.user_index = user_index
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
            self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def exchange(self, name: str) -> Exchange:
        """POST one campaign, timed from sending to the last byte of the body."""
        body = json.dumps({"campaign": {"name": name}})
        started = time.monotonic()
        try:
            self.connect()
            assert self.conn is not None
            self.conn.request("POST", CREATE_PATH, body=body, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
            ended = time.monotonic()
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            error = f"{type(exc).__name__}: {exc}"[:200]
            return Exchange(started, time.monotonic(), 0, error=error)
        return Exchange(started, ended, response.status, raw, response.msg)

    def create(self, name: str) -> Sample:
        """POST one campaign and keep what the figures need."""
        sent = self.exchange(name)
        sample = Sample(self.user_index, sent.ms, sent.status, error=sent.error)
        if not sent.status:
            return sample
        try:
            payload = json.loads(sent.raw)
        except ValueError:
            sample.error = "invalid JSON body"
            return sample
        if sent.status == 201 and isinstance(payload, dict):
            sample.campaign_id = payload.get("id")
            sample.source = payload.get("source")
            sample.gamemaster_id = payload.get("gamemaster_id")
        elif sent.status != 201:
            sample.error = str(payload)[:200]
        return sample


def _load(
    port: int, users: list[BenchUser], plan: HttpBenchPlan, probe: UsageProbe, tick: Tick
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
        burst = _burst(port, users, plan, f"burst {run}", tick)
    burst.usage = usage
    return warmup, sequential, burst


def _sequential(client: Client, count: int, label: str, tick: Tick) -> Phase:
    phase = Phase()
    started = time.perf_counter()
    for index in range(count):
        phase.samples.append(client.create(f"HTTP bench {label} {index}"))
        tick(label.split()[0])
    phase.wall_s = time.perf_counter() - started
    return phase


def _burst(port: int, users: list[BenchUser], plan: HttpBenchPlan, label: str, tick: Tick) -> Phase:
    """C threads, each its own user and connection (opened before the start), released at once."""
    return run_burst(port, users, plan.per_client, label, plan.request_timeout_s, tick)


def run_burst(
    port: int,
    users: list[BenchUser],
    per_client: int,
    label: str,
    timeout_s: float = 30.0,
    tick: Tick | None = None,
) -> Phase:
    """One closed-loop burst: a thread per user, each with its own keep-alive connection opened
    before the start, released together, `per_client` creates each. Public for the load test,
    which ramps the number of users step by step with it."""
    tick = tick or (lambda _label: None)
    clients = [Client(port, i, user.token, timeout_s) for i, user in enumerate(users)]
    results: list[list[Sample]] = [[] for _ in clients]
    ready = threading.Barrier(len(clients) + 1)
    tick_lock = threading.Lock()

    def work(index: int) -> None:
        client = clients[index]
        with contextlib.suppress(OSError):
            client.connect()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        for request in range(per_client):
            results[index].append(client.create(f"HTTP bench {label} {index}-{request}"))
            with tick_lock:
                tick("burst")

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    try:
        for thread in threads:
            thread.start()
        ready.wait(timeout=60)
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - started
    finally:
        ready.abort()
        for client in clients:
            client.close()
    return Phase([s for samples in results for s in samples], wall_s)


# ---------------------------------------------------------------------------- checks and figures


def _check(session: Session, users: list[BenchUser], phases: list[Phase]) -> dict[str, int]:
    """What the database says about the creates: handed out twice, or to the wrong user?"""
    samples = [s for phase in phases for s in phase.samples if s.campaign_id]
    twice = (
        sa.select(PoolEvent.campaign_id)
        .where(PoolEvent.kind == "assigned")
        .group_by(PoolEvent.campaign_id)
        .having(sa.func.count() > 1)
        .subquery()
    )
    duplicated_events = session.scalar(sa.select(sa.func.count()).select_from(twice)) or 0
    assigned_events = (
        session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == "assigned")) or 0
    )
    owners: dict[str, str] = {}
    ids = [uuid.UUID(s.campaign_id) for s in samples if s.campaign_id]
    for chunk in range(0, len(ids), 500):
        rows = session.execute(
            sa.select(Campaign.id, Campaign.user_id, Campaign.is_pool).where(
                Campaign.id.in_(ids[chunk : chunk + 500])
            )
        )
        owners.update({str(cid): str(uid) for cid, uid, is_pool in rows if not is_pool})
    wrong_owner = sum(1 for s in samples if owners.get(s.campaign_id) != users[s.user].id)
    pool_served = sum(1 for s in samples if s.source in POOL_SOURCES)
    return {
        "returned_ids": len(samples),
        "returned_ids_duplicated": _duplicates(samples),
        "assigned_events": assigned_events,
        "pool_served_responses": pool_served,
        "campaigns_assigned_twice": duplicated_events,
        "wrong_owner": wrong_owner,
    }


def _duplicates(samples: list[Sample]) -> int:
    """Returned ids beyond their first occurrence."""
    counts = Counter(s.campaign_id for s in samples if s.campaign_id)
    return sum(n - 1 for n in counts.values() if n > 1)


def _common(phase: Phase) -> dict[str, Any]:
    samples = phase.samples
    served = sorted(s.ms for s in samples if s.status == 201 and s.source in POOL_SOURCES)
    total = len(samples)
    sources = Counter(s.source or f"status {s.status}" for s in samples)
    errors = [s.error for s in samples if s.error]
    figures: dict[str, Any] = {
        "requests": total,
        "p50_ms": percentile(served, 50, ndigits=2),
        "p95_ms": percentile(served, 95, ndigits=2),
        "p99_ms": percentile(served, 99, ndigits=2),
        "max_ms": round(served[-1], 2) if served else None,
        "pool_hit_rate": round(len(served) / total, 4) if total else None,
        "errors_5xx": sum(1 for s in samples if s.status >= 500),
        "errors_other": sum(1 for s in samples if s.status != 201 and s.status < 500),
        "duplicates": _duplicates(samples),
        "sources": dict(sorted(sources.items())),
    }
    figures.update(_per_request(phase))
    if errors:
        figures["first_error"] = errors[0]
    return figures


def _per_request(phase: Phase) -> dict[str, Any]:
    """The phase's resource usage, per create where that reads better."""
    count = len(phase.samples) or 1
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
    served = sum(1 for s in phase.samples if s.status == 201 and s.source in POOL_SOURCES)
    ok = sum(1 for s in phase.samples if s.status == 201)
    wall = phase.wall_s
    return {
        "clients": clients,
        **figures,
        "wall_s": round(wall, 3),
        "throughput_rps": round(ok / wall, 1) if wall > 0 else None,
        "pool_served_rps": round(served / wall, 1) if wall > 0 else None,
    }
