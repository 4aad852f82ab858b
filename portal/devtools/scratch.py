"""Scratch databases and scratch apps: where `bench`, `bench --http` and `pool simulate` run.

None of the dev tools writes to the configured database. Each builds a new, empty one next to it
(on the same PostgreSQL server, or a SQLite file in a temporary folder), migrates it, and drops
it afterwards whatever happened. The app on it has no Redis (in-process fakeredis), no ImageKit
(a local store in the temporary folder) and no mail or Slack, so a tool run can neither upload
files, nor enqueue jobs for real workers, nor alert anyone.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.engine import URL, make_url

from portal import create_app
from portal.extensions import db

log = logging.getLogger("portal.bench")

Tick = Callable[[str], None]
"""Called once per unit of work done (a seeding run, a pool build, a claim), with a label: what
the CLI's progress bar advances on."""

NOISY_LOGGERS = ("portal", "jobs", "alembic")


def no_progress(_label: str) -> None:
    """A `Tick` for callers without a progress bar."""


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Warnings only from these loggers while the block runs (their levels restored after)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def scratch_database(database_url: str, workdir: Path) -> Iterator[str]:
    """A new, empty database next to `database_url` (same PostgreSQL server, or a SQLite file
    in `workdir`), dropped afterwards whatever happens. Yields its URL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        path = workdir / "bench.sqlite3"
        yield f"sqlite:///{path}"
        return
    name = f"campaign_pool_bench_{uuid.uuid4().hex[:12]}"
    with postgres_database(url, name) as created:
        yield created


@contextlib.contextmanager
def postgres_database(source: URL, name: str, template: str | None = None) -> Iterator[str]:
    """Database `name` on `source`'s server (a copy of database `template` when given: `CREATE
    DATABASE ... TEMPLATE`), dropped afterwards whatever happens. Yields its URL.

    Created and dropped through the maintenance database `postgres`: a template must have no
    other connection while it is copied."""
    admin = sa.create_engine(
        source.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    copy_of = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy_of}')
        log.info("bench.database_created", extra={"database": name})
        try:
            yield source.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log.info("bench.database_dropped", extra={"database": name})
    finally:
        admin.dispose()


OFFLINE_SETTINGS = {
    "IMAGEKIT_PRIVATE_KEY": "",
    "IMAGEKIT_PUBLIC_KEY": "",
    "IMAGEKIT_URL_ENDPOINT": "",
    "IMAGEKIT_BASE_URL": "",
    "IMAGE_SHARING": "share",
    "MAIL_SERVER": "",
    "ALERT_EMAILS": "",
    "SLACK_WEBHOOK_URL": "",
}
"""Settings that keep an app from reaching ImageKit, mail or Slack: the scratch apps' and those
of the local gunicorn and workers (`processes.server_env`), unless a test lays its own over them."""


def build_scratch_app(database_url: str, instance: Path, secret_key: str) -> Flask:
    """An app on the scratch database that cannot reach any real outside service."""
    return create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "REDIS_URL": "",
            "SECRET_KEY": secret_key,
            **OFFLINE_SETTINGS,
        }
    )


@dataclass(frozen=True)
class Scratch:
    """A migrated app on a scratch database, that database's URL, and the temporary folder
    both live in (the app's instance folder, a SQLite file, a server's logs)."""

    app: Flask
    database_url: str
    folder: Path


@contextlib.contextmanager
def scratch_app(database_url: str, secret_key: str, prefix: str) -> Iterator[Scratch]:
    """A migrated app on a new scratch database (see `scratch_database`) in a new temporary
    folder named `prefix...`. Afterwards the app's connections are closed, the database is
    dropped and the folder removed, whatever happened."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with scratch_database(database_url, folder) as url:
            app = build_scratch_app(url, folder / "instance", secret_key)
            try:
                with quietly(app):
                    upgrade()
                yield Scratch(app, url, folder)
            finally:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def quietly(app: Flask) -> Iterator[None]:
    """Inside `app`'s context, with warnings only from the loggers that would drown a progress
    bar (per-seed and per-migration info lines)."""
    with app.app_context(), quiet_loggers(*NOISY_LOGGERS):
        yield
