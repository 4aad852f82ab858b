"""Real processes on 127.0.0.1 for `bench --http` and the end-to-end tests: gunicorn and RQ
workers started as docs/running.md runs them, free ports, waiting until they answer, and
stopping or killing them with everything they started.

Every process is started in a process group of its own (`start_new_session`), with its output in
a log file in a work folder, and is stopped in a `finally` block whatever its caller did, so a
failing bench or test leaves no gunicorn or worker behind. An RQ work horse calls setsid() and so
leaves its worker's group: stopping and killing therefore also reach every descendant, found
with psutil (which also guards against a pid reused meanwhile).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import psutil
from redis import Redis
from rq import Worker

from portal.devtools.scratch import OFFLINE_SETTINGS

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
WORKER_QUEUES = ("seeding", "default")
STOP_TIMEOUT_S = 15.0

T = TypeVar("T")


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Poll `condition` until it returns something truthy and return that; raise TimeoutError
    naming `what` after `timeout_s`. A condition may raise to give up early."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a process's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path.name})"


def spawn(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start `command` in a process group of its own, stdin closed, stdout and stderr appended
    to `log_path`. The caller stops it (`stop_process_tree`)."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# ---------------------------------------------------------------------------- process trees


def descendants(pid: int) -> list[psutil.Process]:
    """Children, grandchildren ... of `pid` (empty when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def live_pids(pid: int) -> set[int]:
    """`pid` and its descendants that are alive (zombies left out): gunicorn's master and its
    workers, say, to tell whether any of them was replaced."""
    try:
        tree = [psutil.Process(pid), *descendants(pid)]
    except psutil.NoSuchProcess:
        return set()
    alive = set()
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.add(process.pid)
    return alive


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group (graceful), SIGKILL if it lingers; reaps it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    """`stop_process_group`, then SIGKILL to whatever of its descendants (as they were before
    the stop) outlived it: an RQ work horse is in a session of its own, not in the group."""
    tree = descendants(process.pid)
    stop_process_group(process)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def kill_tree(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> list[int]:
    """Signal a process started here in its own group (gunicorn, a worker), its group and every
    descendant at once, and reap it: with SIGKILL, what a host losing power does to them.
    Returns the pids signalled."""
    tree = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(sig)
    process.wait(timeout=STOP_TIMEOUT_S)
    return [process.pid, *(child.pid for child in tree)]


# ---------------------------------------------------------------------------- gunicorn


def server_env(
    database_url: str,
    secret_key: str,
    port: int,
    *,
    redis_url: str | None = None,
    threads: int = 16,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a local gunicorn (and of the workers beside it): this process's
    environment, the given database, and nothing that reaches an outside service (no ImageKit,
    mail, Slack; Redis only when given). `extra` is laid over it: a test points the app at its
    own ImageKit server or sets pool sizes there."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url or "",
            "SECRET_KEY": secret_key,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_THREADS": str(threads),
            **OFFLINE_SETTINGS,
            # The bench and the load tests measure the pool, not the per-user quota: a handful
            # of gamemasters create thousands of campaigns in minutes (docs/security.md).
            "CAMPAIGN_CREATE_LIMIT": "off",
            "CAMPAIGN_CAP_PER_USER": "0",
        }
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Server:
    """A gunicorn that answers: its port, its master process (the leader of its process group)
    and the environment it runs with."""

    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]


@contextlib.contextmanager
def gunicorn_server(
    database_url: str,
    secret_key: str,
    workdir: Path,
    *,
    workers: int = 1,
    threads: int = 16,
    redis_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 60.0,
) -> Iterator[Server]:
    """Run `gunicorn -c gunicorn.conf.py wsgi:app` on a free 127.0.0.1 port until the block
    ends; yield it once `/health` answers. It runs in `workdir` (so its `instance/` folder is
    the caller's, not the project's) with `server_env`, and its whole group is stopped
    afterwards whatever happened; its output goes to `workdir/gunicorn.log`."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
        "--pythonpath", str(PROJECT_ROOT),
        "-w", str(workers), "--threads", str(threads),
        "-b", f"127.0.0.1:{port}",
        "wsgi:app",
    ]  # fmt: skip
    env = server_env(
        database_url, secret_key, port, redis_url=redis_url, threads=threads, extra=extra_env
    )
    log_path = workdir / "gunicorn.log"
    process = spawn(command, cwd=workdir, env=env, log_path=log_path)
    try:
        wait_until_up(process, port, startup_timeout_s, log_path)
        yield Server(port, process, env)
    finally:
        stop_process_group(process)


def wait_until_up(
    process: subprocess.Popen[bytes], port: int, timeout_s: float, log_path: Path
) -> None:
    """Return once the server on `port` answers `/health` with anything but a 5xx; raise
    RuntimeError with the tail of its log if it exits or stays silent for `timeout_s`."""

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"{log_path.stem} exited ({process.returncode}):\n{log_tail(log_path)}"
            )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status < 500
        except OSError:
            return False
        finally:
            conn.close()

    try:
        wait_until(answers, timeout_s, f"{log_path.stem} on port {port}")
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}:\n{log_tail(log_path)}") from None


# ---------------------------------------------------------------------------- RQ workers


@contextlib.contextmanager
def rq_worker(
    redis_url: str,
    workdir: Path,
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the production worker (docs/running.md: `rq worker --with-scheduler --worker-class
    jobs.worker.AppWorker seeding default`) until the block ends; yield its process once it has
    registered in Redis under `name`.

    `env` is laid over this process's environment; a worker must see the web process's database
    and Redis, so pass the server's (`Server.env`). Like gunicorn it runs in `workdir` in a
    process group of its own (the worker, RQ's scheduler child and the work horse of the current
    job), so a test can SIGKILL the whole tree as a dying host would (`kill_tree`), and the tree
    is stopped afterwards whatever happened. Output goes to `workdir/<name>.log`."""
    command = [
        sys.executable, "-m", "rq.cli", "worker", "--with-scheduler",
        "--worker-class", "jobs.worker.AppWorker",
        "--url", redis_url, "--name", name, *WORKER_QUEUES,
    ]  # fmt: skip
    child_env = {**os.environ, **(env or {})}
    # The project first on the import path, ahead of whatever path the caller passes on.
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    log_path = workdir / f"{name}.log"
    process = spawn(command, cwd=workdir, env=child_env, log_path=log_path)
    try:
        client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)

        def registered() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"rq worker exited ({process.returncode}):\n{log_tail(log_path)}"
                )
            return name in {worker.name for worker in Worker.all(connection=client)}

        try:
            wait_until(registered, startup_timeout_s, f"rq worker {name} to register")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}:\n{log_tail(log_path)}") from None
        finally:
            client.close()
        yield process
    finally:
        stop_process_tree(process)


# ---------------------------------------------------------------------------- both together


class LocalStack:
    """gunicorn and any number of RQ workers on one environment, on 127.0.0.1: the production
    shape of docs/running.md, for the load and fault tests. Use it as a context manager;
    everything started is stopped when the block ends."""

    def __init__(
        self,
        database_url: str,
        secret_key: str,
        redis_url: str,
        workdir: Path,
        *,
        threads: int = 16,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.secret_key = secret_key
        self.redis_url = redis_url
        self.workdir = workdir
        self.threads = threads
        self.extra_env = dict(extra_env or {})
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.exits = contextlib.ExitStack()
        self.server: Server | None = None

    @property
    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("the stack is not running")
        return self.server.port

    def __enter__(self) -> Self:
        try:
            self.server = self.exits.enter_context(
                gunicorn_server(
                    self.database_url, self.secret_key, self.workdir,
                    threads=self.threads, redis_url=self.redis_url, extra_env=self.extra_env,
                )
            )  # fmt: skip
        except BaseException:
            self.exits.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.exits.close()
        self.server = None

    def start_worker(self, name: str | None = None) -> subprocess.Popen[bytes]:
        """One more production worker with the server's environment; stopped with the stack
        (or killed by the caller, `kill_tree`). Its log is `workdir/<name>.log`."""
        if self.server is None:
            raise RuntimeError("the stack is not running")
        name = name or f"worker-{uuid.uuid4().hex[:8]}"
        process = self.exits.enter_context(
            rq_worker(self.redis_url, self.workdir, name, env=self.server.env)
        )
        self.workers[name] = process
        return process
