"""`flask --app app serve`, the command behind `make run`: from an empty folder to a portal an
admin can sign in to, and idempotent on every later start.

The end-to-end tests (marked slow) start the real command in a subprocess, in a temporary working
directory with its own instance folder, on the embedded default (SQLite + fakeredis) or, when
TEST_DATABASE_URL / TEST_REDIS_URL are set, on a fresh PostgreSQL database and the test Redis.
The demo-admin and banner rules are also tested in-process, where they are quick.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.security import check_password_hash

from portal.cli import bootstrap
from tests.support import PROJECT_ROOT
from tests.support.databases import TestDatabases

ROOT = PROJECT_ROOT
CREDENTIALS_RE = re.compile(r"admin login : (\S+) / (\S+)")
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
START_TIMEOUT = 120.0
FLASK_SERVE = [sys.executable, "-m", "flask", "--app", str(ROOT / "app.py"), "serve"]
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Served:
    """One run of `flask serve` in a subprocess, its output captured to files."""

    workdir: Path
    env: dict[str, str]
    args: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    run: int = 0

    @property
    def out(self) -> Path:
        return self.workdir / f"serve-{self.run}.out"

    @property
    def err(self) -> Path:
        return self.workdir / f"serve-{self.run}.err"

    def start(self) -> str:
        """Start and wait for the banner and a healthy server; return the banner output."""
        self.run += 1
        command = [*FLASK_SERVE, "--port", str(self.port), *self.args]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env, stdout=out, stderr=err
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            if "admin login" in self.out.read_text():
                try:
                    status, _, _ = self.request("GET", "/health")
                except OSError:
                    status = 0
                if status == 200:
                    return self.out.read_text()
            time.sleep(0.2)
        raise AssertionError(f"serve not ready after {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> int:
        """Ctrl+C, as an operator would; the server finishes and the worker thread stops."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"serve ignored SIGINT:\n{self.log()}") from None
        return self.process.returncode

    def log(self) -> str:
        return f"--- stdout\n{self.out.read_text()}\n--- stderr\n{self.err.read_text()[-4000:]}"

    def request(
        self, method: str, path: str, body: dict[str, str] | None = None, cookie: str = ""
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": cookie} if cookie else {}
        payload = None
        if body is not None:
            payload = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()


def session_cookie(headers: dict[str, str]) -> str:
    raw = headers.get("Set-Cookie", "")
    return raw.split(";", 1)[0] if raw.startswith("session=") else ""


def login(served: Served, email: str, password: str) -> tuple[int, dict[str, str]]:
    """Sign in through the real form, CSRF token and session cookie included."""
    status, headers, html = served.request("GET", "/login")
    assert status == 200, f"GET /login answered {status}"
    token = CSRF_RE.search(html)
    assert token, "login form carries no CSRF token"
    form = {"csrf_token": token.group(1), "email": email, "password": password}
    status, headers, _ = served.request("POST", "/login", form, session_cookie(headers))
    return status, headers


@dataclass
class Target:
    """Where the served app keeps its data, so the test can look at it directly."""

    database_url: str
    args: list[str]
    env: dict[str, str]


@pytest.fixture
def target(tmp_path: Path, databases: TestDatabases, redis_url: str) -> Iterator[Target]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
    env["PYTHONUNBUFFERED"] = "1"
    args: list[str] = []
    created = None
    if databases.server_url:
        created = databases.empty("serve")
        env["DATABASE_URL"] = created
        url = created
    else:
        url = f"sqlite:///{tmp_path / 'instance' / 'campaign_pool.sqlite3'}"
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env["REDIS_URL"] = redis_url
        args.append("--with-worker")
    yield Target(url, args, env)
    if created:
        databases.drop(created)


def count(url: str, sql: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.text(sql)))
    finally:
        engine.dispose()


ADMINS = "SELECT count(*) FROM users WHERE admin AND lower(email) = 'admin@campaign-pool.local'"
MASTERS = "SELECT count(*) FROM campaigns WHERE is_master_template"


@pytest.mark.slow
def test_serve_from_empty_folder_then_restart(tmp_path: Path, target: Target) -> None:
    served = Served(tmp_path, target.env, target.args)
    try:
        banner = served.start()
        match = CREDENTIALS_RE.search(banner)
        assert match, banner
        email, password = match.groups()
        assert email == bootstrap.DEMO_ADMIN_EMAIL and "(new account)" in banner
        assert f"http://127.0.0.1:{served.port}/login" in banner
        if target.env.get("DATABASE_URL"):
            assert "postgresql+psycopg://" in banner
        else:
            assert "sqlite:///" in banner and "embedded: fakeredis" in banner

        status, _, body = served.request("GET", "/health")
        # "degraded" until the pool refill queued at start has built a ready campaign.
        assert status == 200 and json.loads(body)["status"] in ("ok", "degraded")
        status, _, body = served.request("GET", "/login")
        assert status == 200 and "csrf_token" in body

        status, _ = login(served, email, "not-the-password")
        assert status == 401
        status, headers = login(served, email, password)
        assert status == 302 and headers["Location"].endswith("/admin/"), (status, headers)

        creds = tmp_path / "instance" / bootstrap.DEMO_ADMIN_FILE
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert f"password={password}" in creds.read_text()
        assert served.stop() == 0, served.log()

        banner = served.start()
        assert CREDENTIALS_RE.search(banner).groups() == (email, password)
        assert "(new account)" not in banner
        assert "template    : present" in banner
        status, _ = login(served, email, password)
        assert status == 302
    finally:
        served.stop()
    assert count(target.database_url, ADMINS) == 1
    assert count(target.database_url, MASTERS) == 1


@pytest.mark.slow
def test_serve_refuses_a_busy_port_before_doing_any_work(tmp_path: Path, target: Target) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*FLASK_SERVE, "--port", str(port)],
            cwd=tmp_path,
            env=target.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "applying migrations" not in result.stderr


# --- in-process: the demo admin and the banner ----------------------------------------------


def test_demo_admin_is_created_once_and_its_password_kept(app: Flask, tmp_path: Path) -> None:
    from portal.extensions import db
    from portal.models import User

    first = bootstrap.ensure_demo_admin(db.session, tmp_path)
    assert first.created and first.password and len(first.password) >= 16
    path = tmp_path / bootstrap.DEMO_ADMIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = db.session.scalars(sa.select(User).where(User.email == first.email)).one()
    assert user.admin and check_password_hash(user.password_hash, first.password)

    again = bootstrap.ensure_demo_admin(db.session, tmp_path)
    assert (again.created, again.password) == (False, first.password)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_missing_credentials_file_says_how_to_get_an_admin(app: Flask, tmp_path: Path) -> None:
    from portal.extensions import db

    bootstrap.ensure_demo_admin(db.session, tmp_path)
    (tmp_path / bootstrap.DEMO_ADMIN_FILE).unlink()
    shown = bootstrap.ensure_demo_admin(db.session, tmp_path)
    assert shown.password is None and not shown.created
    assert "missing" in shown.note and "users create" in shown.note


def test_stale_credentials_file_is_not_shown_as_valid(app: Flask, tmp_path: Path) -> None:
    from portal.extensions import db

    admin = bootstrap.ensure_demo_admin(db.session, tmp_path)
    bootstrap.write_credentials(tmp_path / bootstrap.DEMO_ADMIN_FILE, admin.email, "wrong-pass")
    shown = bootstrap.ensure_demo_admin(db.session, tmp_path)
    assert shown.password is None and "no longer matches" in shown.note


def test_banner_shows_what_an_operator_needs_and_hides_db_passwords(tmp_path: Path) -> None:
    from portal.config import load_settings

    settings = load_settings(
        {
            "SECRET_KEY": "x" * 32,
            "DATABASE_URL": "postgres://app:db-secret@db.internal/pool",
            "REDIS_URL": "redis://:redis-secret@cache:6379/0",
        },
        tmp_path,
    )
    prepared = bootstrap.Prepared(
        template=bootstrap.TemplateStatus("present"),
        admin=bootstrap.DemoAdmin(bootstrap.DEMO_ADMIN_EMAIL, "demo-pass-123", created=True),
    )
    text = bootstrap.banner(settings, prepared, "0.0.0.0", 8080, embedded_worker=False)
    assert "http://127.0.0.1:8080/login" in text
    assert "admin@campaign-pool.local / demo-pass-123 (new account)" in text
    assert "db-secret" not in text and "redis-secret" not in text
    assert "postgresql+psycopg://app:***@db.internal/pool" in text
    assert "make worker" in text  # no worker in this process: say how to start one

    lost = bootstrap.Prepared(
        template=bootstrap.TemplateStatus("generated", seconds=1.25),
        admin=bootstrap.DemoAdmin(bootstrap.DEMO_ADMIN_EMAIL, None, False, note="gone. do X"),
    )
    text = bootstrap.banner(settings, lost, "127.0.0.1", 5000, embedded_worker=True)
    assert "password unavailable" in text and "gone. do X" in text
    assert "generated now (1.2 s)" in text or "generated now (1.3 s)" in text
    assert "worker thread in this process" in text


def test_port_check_fails_fast_on_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(bootstrap.ServeError, match="pass another --port"):
            bootstrap.check_port_free("127.0.0.1", busy.getsockname()[1])
    bootstrap.check_port_free("127.0.0.1", free_port())
