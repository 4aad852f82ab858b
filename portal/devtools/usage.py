"""What a phase of `bench --http` costs: CPU of the server's processes and of the scratch
database's backends, and the database connections opened meanwhile.

On two cores the CPU per create bounds throughput whatever the latency (100 creates/s leaves
20 ms of CPU per create, both processes together), so a burst that misses its rate is explained
by these figures, not guessed at. Process CPU comes from psutil (user + system time of each live
process); the database's CPU only when PostgreSQL runs on this host, and only of backends alive
at the end of the phase (a backend that connected and left meanwhile is counted in
`db_connections_opened`, not in CPU).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from portal.devtools.processes import descendants

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})
STATS_FLUSH_S = 1.1  # PostgreSQL backends report their statistics about once a second


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User + system CPU the processes have spent so far (those gone meanwhile count 0)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU of `pid` and all its descendants (gunicorn's master and workers); None when the
    operating system does not tell."""
    try:
        return cpu_seconds([psutil.Process(pid), *descendants(pid)])
    except psutil.NoSuchProcess:
        return 0.0
    except psutil.AccessDenied:
        return None


def backend_cpu_seconds(pids: Iterable[int]) -> dict[int, float] | None:
    """CPU per PostgreSQL backend process (pids from pg_stat_activity, on this host); None
    when the operating system will not tell (another user's processes on some systems)."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.name() == "postgres":
                found[pid] = cpu_seconds([process])
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            return None
    return found


class UsageProbe:
    """Measures phases of a load against a server (by its master's pid) on a database."""

    def __init__(self, database_url: str, server_pid: int) -> None:
        url = make_url(database_url)
        self.server_pid = server_pid
        self.postgres = url.get_backend_name() == "postgresql"
        self.local_db = self.postgres and (url.host or "localhost") in LOCAL_HOSTS
        self.engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        # One connection held for the whole load, so snapshots open no sessions of their own.
        self.conn = self.engine.connect() if self.postgres else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.engine.dispose()

    def snapshot(self) -> tuple[float | None, dict[int, float] | None, int | None]:
        """(server CPU s, CPU s per database backend, sessions opened so far), None where it
        cannot be known."""
        server = tree_cpu_seconds(self.server_pid)
        backends: dict[int, float] | None = None
        sessions = None
        if self.conn is not None:
            self.conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            sessions = self.conn.scalar(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
            if self.local_db:
                pids = self.conn.scalars(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                backends = backend_cpu_seconds(pids)
        return server, backends, sessions

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float | None]]:
        """Fill the yielded dict with what the block cost: server_cpu_s, database_cpu_s,
        db_connections_opened (None where it cannot be known)."""
        usage: dict[str, float | None] = {}
        server0, backends0, sessions0 = self.snapshot()
        yield usage
        if self.postgres:
            time.sleep(STATS_FLUSH_S)
        server1, backends1, sessions1 = self.snapshot()
        usage["server_cpu_s"] = (
            None if server0 is None or server1 is None else round(server1 - server0, 3)
        )
        usage["database_cpu_s"] = (
            None
            if backends0 is None or backends1 is None
            else round(sum(cpu - backends0.get(pid, 0.0) for pid, cpu in backends1.items()), 3)
        )
        usage["db_connections_opened"] = (
            None if sessions0 is None or sessions1 is None else sessions1 - sessions0
        )
