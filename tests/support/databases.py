"""Fresh, isolated databases for tests: never the developer's data.

On PostgreSQL (TEST_DATABASE_URL) each test run creates its own databases on that server:
a "golden" database is built once per session (migrated, optionally filled by a builder such as
the master template generator) and every test gets `CREATE DATABASE x TEMPLATE golden`, which
copies it in a few tens of milliseconds. On SQLite the golden file is copied instead.

Mutation runs (`make mutate`) start one short pytest session per mutant. There
CAMPAIGN_POOL_TEST_GOLDENS names a run: golden databases are then kept under names derived from it
and reused by every later session of that run, instead of being migrated and filled again each
time (scripts/mutate.py drops them at the end of the run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from portal.config import normalize_database_url


class TestDatabases:
    """Creates golden databases once and hands out throw-away copies of them."""

    __test__ = False  # not a test class

    def __init__(self, workdir: Path) -> None:
        raw = os.environ.get("TEST_DATABASE_URL", "").strip()
        self.server_url = normalize_database_url(raw, "TEST_DATABASE_URL") if raw else None
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.goldens: dict[str, str] = {}
        self.shared_goldens: dict[str, str] = {}
        self.created: list[str] = []

    @property
    def backend(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def _admin_engine(self) -> sa.Engine:
        url = make_url(self.server_url).set(database="postgres")
        return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def _pg_url(self, name: str) -> str:
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def new_name(self, label: str) -> str:
        return f"cp_test_{self.run_id}_{label}_{uuid.uuid4().hex[:6]}"

    def empty(self, label: str = "db") -> str:
        """A new, empty database (no schema) and its URL."""
        name = self.new_name(label)
        if self.server_url:
            engine = self._admin_engine()
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            engine.dispose()
            self.created.append(name)
            return self._pg_url(name)
        return f"sqlite:///{self.workdir / (name + '.sqlite3')}"

    def golden(self, key: str, build: Callable[[str], None]) -> str:
        """The URL of the golden database `key`, building it with `build(url)` the first time."""
        if key not in self.goldens:
            if self.shared_run:  # kept apart from self.goldens: drop_all leaves them
                self.shared_goldens.setdefault(key, self._shared_golden(key, build))
                return self.shared_goldens[key]
            url = self.empty(f"golden_{key}")
            build(url)
            self.goldens[key] = url
        return self.goldens[key]

    @property
    def shared_run(self) -> str:
        """The mutation run whose goldens outlive this session, or "" (the usual case)."""
        return os.environ.get("CAMPAIGN_POOL_TEST_GOLDENS", "").strip()

    def _shared_golden(self, key: str, build: Callable[[str], None]) -> str:
        """A golden kept across sessions: built once under a temporary name, then renamed into
        place, so that concurrent sessions never see a half-built one."""
        final = f"cp_golden_{self.shared_run}_{key}"
        if self.server_url:
            engine = self._admin_engine()
            with engine.connect() as conn:
                exists = conn.scalar(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": final}
                )
            engine.dispose()
            if not exists:
                url = self.empty(f"golden_{key}")
                build(url)
                self.drop_connections(url)
                engine = self._admin_engine()
                old = make_url(url).database
                # another session may have renamed its copy into place first
                with engine.connect() as conn, contextlib.suppress(sa.exc.ProgrammingError):
                    conn.execute(sa.text(f'ALTER DATABASE "{old}" RENAME TO "{final}"'))
                engine.dispose()
                self.drop(url)
            return self._pg_url(final)
        target = Path(self.shared_dir) / f"{final}.sqlite3"
        if not target.exists():
            url = self.empty(f"golden_{key}")
            build(url)
            with contextlib.suppress(FileExistsError):
                os.link(make_url(url).database, target)
            self.drop(url)
        return f"sqlite:///{target}"

    @property
    def shared_dir(self) -> str:
        """Where a shared run keeps SQLite goldens (beside the tests' instance folder)."""
        return os.environ.get("PYTEST_INSTANCE_DIR", "/tmp")

    def drop_connections(self, url: str) -> None:
        """Ends other sessions on `url` (a rename needs the database to itself)."""
        engine = self._admin_engine()
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": make_url(url).database},
            )
        engine.dispose()

    def clone(self, golden_url: str, label: str = "t") -> str:
        """A private copy of a golden database."""
        name = self.new_name(label)
        if self.server_url:
            source = make_url(golden_url).database
            engine = self._admin_engine()
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
            engine.dispose()
            self.created.append(name)
            return self._pg_url(name)
        target = self.workdir / f"{name}.sqlite3"
        shutil.copyfile(make_url(golden_url).database, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        if not self.server_url:
            path = make_url(url).database
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = make_url(url).database
        engine = self._admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for url in list(self.goldens.values()):
            self.drop(url)
        if self.server_url:
            for name in list(self.created):
                self.drop(self._pg_url(name))
