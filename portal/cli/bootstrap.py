"""Getting a fresh or existing installation ready to serve: the logic behind `flask serve`.

`make run` has to go from a fresh clone to a usable portal with no configuration, so start-up
does what an operator would otherwise do by hand, each step idempotent so that every later
start is quick and changes nothing:

1. bring the schema to the newest migration (migrations are the only way the schema is made);
2. generate the master template if there is none (every campaign is cloned from it);
3. create a demo admin once, with a random password. Only the password's hash is stored, so the
   password is printed when the account is created and also kept in `instance/demo-admin.txt`
   (mode 0600, next to the SQLite database and the generated secret key) so that later starts
   can print it again. If that file is gone the password cannot be recovered, and start-up says
   how to get an admin account instead.

Then the banner tells the operator where the portal is, how to log in, which database and queue
it uses; `run_server` starts the embedded worker thread when there is no external Redis (or when
asked to) and serves with the Werkzeug server through Flask-SocketIO's threading mode.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from portal.config import Settings

if TYPE_CHECKING:
    from portal.models import User

log = logging.getLogger("portal.bootstrap")

DEMO_ADMIN_EMAIL = "admin@campaign-pool.local"
DEMO_ADMIN_NAME = "Demo Admin"
DEMO_ADMIN_FILE = "demo-admin.txt"
WORKER_COMMAND = "make worker"
RESET_HINT = (
    "Its password is not stored anywhere else. Create another admin with\n"
    "  flask --app app users create you@example.com --name 'Your Name' "
    "--password 'a-long-password' --admin\n"
    "or, on the embedded default, delete instance/campaign_pool.sqlite3 to start over."
)

Echo = Callable[[str], None]


class ServeError(RuntimeError):
    """The server cannot start as asked; the message says what to change."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DemoAdmin:
    """The demo admin account and what can be shown of its credentials."""

    email: str
    password: str | None
    created: bool
    note: str | None = None


@dataclass(frozen=True)
class TemplateStatus:
    """What start-up found or did about the master template."""

    state: str  # "present" | "generated"
    seconds: float = 0.0


@dataclass(frozen=True)
class Prepared:
    template: TemplateStatus
    admin: DemoAdmin | None


# --- 1. schema -------------------------------------------------------------------------------


def run_migrations(app: Flask) -> None:
    """`flask db upgrade`, in-process: the schema at the newest revision."""
    from flask_migrate import upgrade

    with app.app_context(), warnings.catch_warnings():
        # SQLite cannot reflect the lower(email) index while batch migrations copy tables;
        # the index is created by the migration itself, so the warning is noise on every start.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        upgrade()


# --- 2. master template ----------------------------------------------------------------------


def ensure_master_template(app: Flask, echo: Echo = _stderr) -> TemplateStatus:
    """Generate the master template unless one exists. Generation takes a few seconds and happens
    on the first start only, so the progress is printed rather than left to look like a hang."""
    from portal.appcontext import db_session
    from portal.extensions import db
    from portal.services.campaigns.records import find_master_template

    with app.app_context():
        if find_master_template(db_session()) is not None:
            return TemplateStatus("present")
        from portal.services.images.backend import get_image_store
        from portal.services.template import TemplateError, generate_template

        echo("master template: none yet, generating it (first start only) ...")
        started = time.perf_counter()
        try:
            generate_template(db_session(), get_image_store())
        except TemplateError:  # another process generated it meanwhile
            db.session.rollback()
            return TemplateStatus("present")
        seconds = time.perf_counter() - started
        echo(f"master template: generated in {seconds:.1f} s")
        log.info("bootstrap.template_generated", extra={"duration_ms": round(seconds * 1000)})
        return TemplateStatus("generated", seconds=seconds)


# --- 3. demo admin ---------------------------------------------------------------------------


def credentials_path(instance_path: str | Path) -> Path:
    return Path(instance_path) / DEMO_ADMIN_FILE


def write_credentials(path: Path, email: str, password: str) -> None:
    """Write the credentials file readable by its owner only, replacing any older one
    atomically so a crash never leaves a half-written password behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "# Campaign Pool demo admin, created by `flask --app app serve`.\n"
            "# The database holds only a hash of this password: this file is its only copy.\n"
            f"email={email}\npassword={password}\n"
        )
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_credentials(path: Path) -> dict[str, str]:
    """The `key=value` lines of a credentials file; {} when it is missing or unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def _find_user(session: Session, email: str) -> User | None:
    from portal.models import User

    stmt = sa.select(User).where(sa.func.lower(User.email) == email.lower())
    return session.scalars(stmt).first()


def ensure_demo_admin(session: Session, instance_path: str | Path) -> DemoAdmin:
    """Create the demo admin on first start (committing), or recover its credentials after.

    The account is also a gamemaster so the same credentials can try the JSON API."""
    from portal.services.accounts.users import UserError, create_user

    path = credentials_path(instance_path)
    user = _find_user(session, DEMO_ADMIN_EMAIL)
    if user is None:
        new_password = secrets.token_urlsafe(12)
        try:
            create_user(
                session,
                DEMO_ADMIN_EMAIL,
                DEMO_ADMIN_NAME,
                new_password,
                admin=True,
                gamemaster=True,
            )
            # The file first: a commit without it would leave an admin nobody can log in as.
            write_credentials(path, DEMO_ADMIN_EMAIL, new_password)
            session.commit()
        except UserError:  # another process created it between our lookup and insert
            session.rollback()
            user = _find_user(session, DEMO_ADMIN_EMAIL)
        except BaseException:
            session.rollback()
            raise
        else:
            log.info("bootstrap.demo_admin_created", extra={"email": DEMO_ADMIN_EMAIL})
            return DemoAdmin(DEMO_ADMIN_EMAIL, new_password, created=True)
    stored = read_credentials(path)
    password = stored.get("password")
    if not password or stored.get("email", "").lower() != DEMO_ADMIN_EMAIL:
        return DemoAdmin(
            DEMO_ADMIN_EMAIL, None, created=False, note=f"{path} is missing. {RESET_HINT}"
        )
    if not (user and user.password_hash and check_password_hash(user.password_hash, password)):
        return DemoAdmin(
            DEMO_ADMIN_EMAIL,
            None,
            created=False,
            note=f"the password in {path} no longer matches the account. {RESET_HINT}",
        )
    return DemoAdmin(DEMO_ADMIN_EMAIL, password, created=False)


# --- start-up as a whole ---------------------------------------------------------------------


def prepare(app: Flask, *, demo_admin: bool = True, echo: Echo = _stderr) -> Prepared:
    """Steps 1-3 of the module docstring, in order, printing progress through `echo`."""
    settings: Settings = app.config["SETTINGS"]
    echo(f"database: {describe_database(settings)}: applying migrations ...")
    started = time.perf_counter()
    try:
        run_migrations(app)
    except sa.exc.OperationalError as exc:
        # One line naming the setting, not a traceback: the usual causes are a folder that
        # does not exist, a server that is down, or a wrong password (docs/running.md).
        reason = (str(exc.orig).strip().splitlines() or ["unknown error"])[0][:300]
        raise ServeError(
            f"cannot open the database DATABASE_URL={describe_database(settings)}: {reason}"
        ) from None
    echo(f"database: schema up to date ({time.perf_counter() - started:.1f} s)")
    template = ensure_master_template(app, echo)
    admin = None
    if demo_admin:
        from portal.appcontext import db_session

        with app.app_context():
            admin = ensure_demo_admin(db_session(), app.instance_path)
    return Prepared(template=template, admin=admin)


def describe_database(settings: Settings) -> str:
    """The database URL with any password masked."""
    url: str = settings.redacted()["database_url"]
    return url


def describe_queue(settings: Settings, embedded_worker: bool) -> str:
    if settings.embedded_queue:
        return "embedded: fakeredis in this process, jobs run by a worker thread in this process"
    redis_url = settings.redacted()["redis_url"]
    if embedded_worker:
        return f"Redis {redis_url}; jobs also run by a worker thread in this process"
    return f"Redis {redis_url}; no worker here: start `{WORKER_COMMAND}` or serve --with-worker"


def display_url(host: str, port: int) -> str:
    """The URL to open: a wildcard bind address is not something a browser can open."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def banner(
    settings: Settings, prepared: Prepared, host: str, port: int, embedded_worker: bool
) -> str:
    """The lines an operator needs after start-up, and nothing secret but the demo password."""
    url = display_url(host, port)
    lines = [f"Campaign Pool is running: {url}/login  (health: {url}/health)"]
    admin = prepared.admin
    if admin is not None:
        if admin.password:
            fresh = " (new account)" if admin.created else ""
            lines.append(f"  admin login : {admin.email} / {admin.password}{fresh}")
        else:
            lines.append(f"  admin login : {admin.email}, password unavailable:")
            lines.extend(f"                {line}" for line in (admin.note or "").splitlines())
    lines.append(f"  database    : {describe_database(settings)}")
    lines.append(f"  queue       : {describe_queue(settings, embedded_worker)}")
    template = {
        "present": "present",
        "generated": f"generated now ({prepared.template.seconds:.1f} s)",
    }[prepared.template.state]
    lines.append(f"  template    : {template}")
    lines.append("  stop with Ctrl+C")
    width = max(len(line) for line in lines)
    rule = "=" * min(width, 100)
    return "\n".join([rule, *lines, rule])


def check_port_free(host: str, port: int) -> None:
    """Fail before the (slow) first-start work rather than after it, with a useful message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
            ) from None


def run_server(
    app: Flask,
    host: str,
    port: int,
    *,
    with_worker: bool = False,
    demo_admin: bool = True,
    out: TextIO | None = None,
) -> None:
    """Prepare, print the banner, start the embedded worker if needed, serve until stopped."""
    from portal.extensions import socketio

    settings: Settings = app.config["SETTINGS"]
    check_port_free(host, port)
    prepared = prepare(app, demo_admin=demo_admin)
    embedded_worker = settings.embedded_queue or with_worker
    print(banner(settings, prepared, host, port, embedded_worker), file=out or sys.stdout)
    (out or sys.stdout).flush()
    thread = None
    if embedded_worker:
        from jobs.embedded import start_embedded_worker

        thread = start_embedded_worker(app)
    # Fill the pools now rather than at the first scheduled refill, so the first campaigns
    # created after start-up are served from the pool.
    from portal.services.infra.queue import enqueue_replenish, get_redis

    enqueue_replenish(get_redis(app), "all")
    log.info(
        "bootstrap.serving",
        extra={
            "host": host,
            "port": port,
            "database": describe_database(settings),
            "embedded_queue": settings.embedded_queue,
            "embedded_worker": embedded_worker,
        },
    )
    # `flask` sets this so that a stray `app.run()` in an imported module cannot block a CLI
    # command; serving *is* this command's job, and socketio.run goes through app.run.
    os.environ.pop("FLASK_RUN_FROM_CLI", None)
    try:
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True)
    finally:
        if thread is not None:
            thread.stop(timeout=5)
