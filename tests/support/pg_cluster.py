"""A private PostgreSQL cluster for tests that must stop, crash or restart the database.

The shared test server (TEST_DATABASE_URL) serves every other test run on the machine, so a
fault test may never restart it. This module runs a throw-away cluster instead: `initdb` into a
temporary directory, `pg_ctl start` on a free 127.0.0.1 port with its unix socket inside that
directory, `restart(mode)` on demand, and `pg_ctl stop -m immediate` plus removal of the
directory when the fixture ends, whatever the test did. PostgreSQL refuses to run as root, so as
root every command runs as the `postgres` user (`runuser`, else `setpriv`), in a directory that
user owns; when neither is possible the fixture skips and says why.

`pg_ctl` detaches the postmaster from our process group, so it is stopped explicitly: by the
fixture's teardown, and by a `weakref.finalize` that also runs at interpreter exit. Only a
SIGKILL of the test process itself can leave it running (its data directory under /tmp names
it: `cp-pg-cluster-*`).

Settings favour speed over durability of the *machine* (`fsync=off`): a crash of PostgreSQL
itself (`-m immediate`) still loses nothing committed, because the WAL reaches the OS before a
commit returns (`synchronous_commit` stays on); only an OS crash would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal.devtools.processes import free_port

SUPERUSER = "postgres"
RUN_AS = "postgres"
START_TIMEOUT_S = 30
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


class ClusterUnavailable(Exception):
    """This machine cannot run a private cluster (no binaries, root without a way to drop it)."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl (or $PG_BIN)."""
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=_version, reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise ClusterUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")


def _version(bin_dir: str) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, (9, 6) for 9.6; (0,) for a name that is no version."""
    try:
        return tuple(int(part) for part in Path(bin_dir).parent.name.split("."))
    except ValueError:
        return (0,)


def _privilege_drop() -> list[str]:
    """The command prefix that runs PostgreSQL as an unprivileged user, [] when not root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise ClusterUnavailable(f"running as root and there is no {RUN_AS!r} user") from None
    for prefix in (
        ["runuser", "-u", RUN_AS, "--"],
        ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--"],
    ):
        if shutil.which(prefix[0]) is None:
            continue
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return prefix
    raise ClusterUnavailable(f"running as root and neither runuser nor setpriv can become {RUN_AS}")


class PgCluster:
    """One private cluster: `url(database)`, `create_database`, `restart`, `stop`."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.prefix = _privilege_drop()
        self.root = Path(tempfile.mkdtemp(prefix="cp-pg-cluster-"))
        if self.prefix:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._finalizer = weakref.finalize(self, _teardown, self.bin_dir, self.prefix, self.root)

    # -- commands ----------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n--- server log ---\n{self.log_tail()}"
            )
        return result

    def _pg_ctl(self, *args: str) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", str(START_TIMEOUT_S), *args,
        )  # fmt: skip

    def init(self) -> PgCluster:
        """initdb with trust authentication for SUPERUSER, then the test settings."""
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.root}'"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# cp test cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        return self

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, mode: str = "fast") -> float:
        """`pg_ctl restart -m mode` (fast: roll back and disconnect every session; immediate:
        no shutdown checkpoint, crash recovery at start); seconds until it accepts again."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}")
        started = time.monotonic()
        self._pg_ctl("restart", "-m", mode)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop now (immediate) and delete the cluster; safe to call twice."""
        self._finalizer()

    # -- connections -------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin_engine(self) -> sa.Engine:
        return sa.create_engine(
            self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE name [TEMPLATE template] (the template must have no connections);
        returns its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        engine = self.admin_engine()
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
        finally:
            engine.dispose()
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _teardown(bin_dir: Path, prefix: list[str], root: Path) -> None:
    """Stop the postmaster (pg_ctl, then SIGKILL by pid if it is still there) and delete the
    directory. A module-level function: the finalizer must not keep the cluster object alive."""
    data = root / "data"
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                 "-t", "10", "stop"],
                capture_output=True,
                timeout=20,
            )  # fmt: skip
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started cluster, stopped and deleted when the block ends."""
    cluster = PgCluster()
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster for the module's tests; skipped where none can run."""
    try:
        cluster = PgCluster()
    except ClusterUnavailable as reason:
        pytest.skip(f"no private PostgreSQL cluster: {reason}")
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.stop()
