"""The deployment as documented: Procfile, systemd units, docs/deployment.md, docs/configuration.md.

Two kinds of test. The drift tests read the source and the docs and fail when they disagree:
an environment variable the code reads but docs/configuration.md does not describe, a pool
setting missing there, a Procfile process or a rollback command missing from
docs/deployment.md, a systemd unit that runs something other than its Procfile line. The
end-to-end tests follow docs/deployment.md as an operator would: every process is started from
the Procfile's own command line (through `sh -c`, as Procfile runners do), against a scratch
PostgreSQL database, Redis and a local ImageKit-compatible server, from the project directory.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from portal.devtools.http_client import request_json
from portal.devtools.imagekit_server import LocalImageKitServer
from portal.devtools.processes import (
    PROJECT_ROOT,
    free_port,
    log_tail,
    server_env,
    spawn,
    stop_process_tree,
    wait_until_up,
)
from portal.services.pool.config import SETTING_BOUNDS
from tests.conftest import flush_redis
from tests.support.databases import TestDatabases

PROCFILE = PROJECT_ROOT / "Procfile"
DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "deployment.md"
CONFIGURATION_DOC = PROJECT_ROOT / "docs" / "configuration.md"
SYSTEMD_DIR = PROJECT_ROOT / "deploy" / "systemd"
APP_DIR = "/srv/campaign-pool"  # where the example units expect the checkout
# The code whose environment reads must be documented: the service, not its tests.
SCANNED = ("portal", "jobs", "migrations/env.py", "app.py", "wsgi.py", "gunicorn.conf.py")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")

# docs/deployment.md, "Rollback": the commands and SQL the tests below run, verbatim.
# The previous release's head: going back one release from HEAD.
PREVIOUS_RELEASE = "0003"
ROLLBACK_ONE_RELEASE = f"flask --app app db downgrade {PREVIOUS_RELEASE}"
RETIRE_POOL_SQL = "UPDATE campaigns SET pool_status = 'retired' WHERE is_pool;"
POOL_CLEANUP = "flask --app app pool cleanup"
ROLLBACK_BELOW_POOL = "flask --app app db downgrade 0001"
DOCUMENTED = (
    ROLLBACK_ONE_RELEASE,
    RETIRE_POOL_SQL,
    POOL_CLEANUP,
    ROLLBACK_BELOW_POOL,
)
TEMPLATE_GENERATE = "flask --app app template generate"
CONTENT_TABLES = ("schticks", "weapons", "factions", "junctures", "characters")
MASTER_TARGET = 2
HEAD = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head()
SERVICES = ("web", "worker", "scheduler")


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process name -> command line, in the file's order (Procfile format: `name: command`)."""
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes[name.strip()] = command.strip()
    return processes


# ---------------------------------------------------------------------------- drift


def _is_environ(node: ast.AST) -> bool:
    """`os.environ`, or a name holding an environment mapping (`env`, `environ`)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("env", "environ")


def _env_names_in(tree: ast.AST) -> set[str]:
    """Names read from the environment: `os.environ.get("X")`, `os.environ["X"]`,
    `os.getenv("X")`, `env.get("X")`, and helpers handed the mapping and a name
    (`_int(env, "X", 5)`); writes (`pop`, `update`, assignment) are not reads."""
    names: set[str] = set()
    for node in ast.walk(tree):
        constants: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            is_get = isinstance(func, ast.Attribute) and func.attr == "get"
            if (is_get and _is_environ(func.value)) or (
                isinstance(func, ast.Attribute) and func.attr == "getenv"
            ):
                constants = node.args[:1]
            elif any(_is_environ(arg) for arg in node.args):
                constants = list(node.args)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            constants = [node.slice] if _is_environ(node.value) else []
        names.update(
            const.value
            for const in constants
            if isinstance(const, ast.Constant)
            and isinstance(const.value, str)
            and ENV_NAME.match(const.value)
        )
    return names


def env_vars_read_by_code() -> dict[str, set[str]]:
    """Variable -> the files that read it, found by parsing every scanned source file."""
    found: dict[str, set[str]] = {}
    for entry in SCANNED:
        path = PROJECT_ROOT / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            for name in _env_names_in(ast.parse(file.read_text(), str(file))):
                found.setdefault(name, set()).add(str(file.relative_to(PROJECT_ROOT)))
    return found


def test_create_app_knows_every_variable_the_settings_read() -> None:
    """`config.ENV_NAMES` (what `create_app(config)` passes to the settings as environment) is
    exactly what `load_settings` reads: a new variable added to one and not the other fails."""
    from portal.config import ENV_NAMES

    source = (PROJECT_ROOT / "portal" / "config.py").read_text()
    assert _env_names_in(ast.parse(source)) == ENV_NAMES


def test_the_scanner_finds_each_way_the_code_reads_the_environment() -> None:
    """Not vacuous: one variable per reading style used in the code base is found."""
    found = env_vars_read_by_code()
    assert "portal/config.py" in found["DATABASE_URL"]  # env.get("...")
    assert "portal/config.py" in found["POOL_MASTER_TARGET"]  # _int(env, "...", 5)
    assert "portal/config.py" in found["SLACK_WEBHOOK_URL"]  # _http_url(env, "...")
    assert "gunicorn.conf.py" in found["WEB_THREADS"]  # os.environ.get("...")
    assert "portal/logs.py" in found["LOG_LEVEL"]
    sample = ast.parse('os.environ.pop("GONE")\nos.environ["SET"] = "1"\nx = os.getenv("READ")')
    assert _env_names_in(sample) == {"READ"}


def test_every_environment_variable_and_pool_setting_is_documented() -> None:
    doc = CONFIGURATION_DOC.read_text()
    missing = {
        name: sorted(files)
        for name, files in env_vars_read_by_code().items()
        if f"`{name}`" not in doc
    }
    assert not missing, f"docs/configuration.md does not describe {missing}"
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| `")}
    for key, (low, high, _) in SETTING_BOUNDS.items():
        row = rows.get(f"`{key}`")
        assert row is not None, f"pool setting {key} has no row in docs/configuration.md"
        assert f"{low} to {high}" in row, f"{key}: the row does not give its range {low} to {high}"


def test_every_procfile_process_and_rollback_command_is_in_the_deployment_doc() -> None:
    doc = DEPLOYMENT_DOC.read_text()
    processes = read_procfile()
    assert list(processes) == ["release", "web", "worker", "scheduler"]
    for name, command in processes.items():
        assert f"`{name}`" in doc, f"Procfile process {name} is not documented"
        assert command in doc, f"docs/deployment.md lacks the {name} command line {command!r}"
    for command in (*DOCUMENTED, TEMPLATE_GENERATE):
        assert command in doc, f"docs/deployment.md lacks {command!r}"


def _exec_start(unit: Path) -> str:
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, f"{unit.name}: expected one ExecStart"
    return lines[0].removeprefix("ExecStart=")


def test_systemd_units_run_the_procfile_commands() -> None:
    """One source of truth: each unit's ExecStart is its Procfile line (systemd spells the
    variable `${REDIS_URL}` and names the virtualenv's executable by its path)."""
    processes = read_procfile()
    units = {
        "release": "campaign-pool-migrate.service",
        "web": "campaign-pool-web.service",
        "worker": "campaign-pool-worker@.service",
        "scheduler": "campaign-pool-scheduler.service",
    }
    for name, unit in units.items():
        command = _exec_start(SYSTEMD_DIR / unit)
        command = command.removeprefix(f"{APP_DIR}/.venv/bin/").replace(
            "${REDIS_URL}", "$REDIS_URL"
        )
        assert command == processes[name].replace('"$REDIS_URL"', "$REDIS_URL"), unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units, pointed at this checkout (it checks that every
    executable exists), with no warning at all: an unknown or misspelt key is only a warning."""
    venv_bin = Path(sys.executable).parent
    for unit in SYSTEMD_DIR.iterdir():
        text = unit.read_text().replace(f"{APP_DIR}/.venv/bin", str(venv_bin))
        (tmp_path / unit.name).write_text(text.replace(APP_DIR, str(PROJECT_ROOT)))
    names = sorted(p.name for p in tmp_path.iterdir())
    names = [n.replace("@.service", "@1.service") for n in names]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"WEB_THREADS": "many"}, "configuration error: WEB_THREADS must be an integer"),
        ({"LOG_LEVEL": "loud"}, "configuration error: LOG_LEVEL must be one of"),
        ({}, None),
    ],
)
def test_web_refuses_a_bad_setting_naming_it(
    tmp_path: Path, setting: dict[str, str], message: str | None
) -> None:
    """The Procfile's web line with `--check-config` (gunicorn loads its configuration file
    and the app, then exits): a bad value is named, a good configuration passes."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
        "SECRET_KEY": secrets.token_hex(16),
        "REDIS_URL": "",
        "LOG_LEVEL": "",
        **setting,
    }
    result = subprocess.run(
        ["sh", "-c", f"exec {read_procfile()['web']} --check-config"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    if message is None:
        assert result.returncode == 0, output
    else:
        assert result.returncode != 0 and message in output, output


# ---------------------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    """Procfile processes on a scratch database; every process in its own process group."""

    env: dict[str, str]
    port: int
    logs: Path
    database_url: str
    redis_url: str
    processes: dict[str, str] = field(default_factory=read_procfile)
    running: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""
    imagekit: LocalImageKitServer | None = None

    def run(self, command: str, timeout: float = 120) -> str:
        """Run a one-shot command (a Procfile line or a documented CLI call); return stdout."""
        started = time.monotonic()
        result = subprocess.run(
            ["sh", "-c", command],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        # Not a *.log: `users create --token` prints the token, on purpose, once.
        with open(self.logs / "commands.txt", "a") as log:
            took = time.monotonic() - started
            log.write(f"$ {command}  [{took:.1f} s]\n{result.stdout}{result.stderr}\n")
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def start(self, *names: str) -> None:
        for name in names:
            assert name not in self.running, f"{name} already runs"
            # `exec`, as `bash -c` and systemd do: the signal reaches the program itself.
            # (dash would keep a shell in between that dies at once on SIGTERM, leaving RQ's
            # work horse, which has a process group of its own, to finish unwatched.)
            self.running[name] = spawn(
                ["sh", "-c", f"exec {self.processes[name]}"],
                cwd=PROJECT_ROOT,
                env=self.env,
                log_path=self.logs / f"{name}.log",
            )
        if "web" in names:
            started = time.monotonic()
            wait_until_up(self.running["web"], self.port, 60, self.logs / "web.log")
            self.note(f"web up [{time.monotonic() - started:.1f} s]")

    def ensure_running(self) -> None:
        """All long-running processes up and the pool full (what a test may start from)."""
        self.start(*(name for name in SERVICES if name not in self.running))
        self.wait_healthy()

    def stop(self, *names: str) -> None:
        """SIGTERM each group (what systemd and Procfile runners send), SIGKILL what lingers,
        RQ's work horse (in a session of its own) included."""
        for name in names or tuple(self.running):
            process = self.running.pop(name, None)
            if process is not None:
                stop_process_tree(process)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if path == "/health":  # its details need HEALTH_TOKEN; the public answer is the status
            health = {"X-Health-Token": self.env["HEALTH_TOKEN"]}
            return request_json(self.port, method, path, body, headers=health)
        return request_json(self.port, method, path, body, token=self.token)

    def note(self, line: str) -> None:
        with open(self.logs / "commands.txt", "a") as log:
            log.write(f"# {line}\n")

    def wait_healthy(self, ready: int = MASTER_TARGET, timeout: float = 60) -> dict[str, Any]:
        """Until /health says ok with `ready` campaigns in the master pool (workers alive,
        Redis and the database reachable)."""
        started = time.monotonic()
        deadline = started + timeout
        health: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, health = self.request("GET", "/health")
                if health["status"] == "ok" and health["checks"]["pool"]["ready"] >= ready:
                    self.note(f"healthy [{time.monotonic() - started:.1f} s]")
                    return health
            time.sleep(0.2)
        raise AssertionError(f"not healthy in {timeout:.0f} s: {health}\n{self.tails()}")

    def create_campaign(self, name: str) -> dict[str, Any]:
        status, body = self.request("POST", "/api/v2/campaigns", {"campaign": {"name": name}})
        assert status == 201, (status, body, self.tails())
        return body

    def tails(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log_tail(log, 15)}" for log in sorted(self.logs.glob("*.log"))
        )

    def sql(self, statement: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def revision(self) -> str:
        return self.sql("SELECT version_num FROM alembic_version")[0][0]

    def counts(self) -> dict[str, int]:
        tables = ("users", "api_tokens", "image_blobs", "image_attachments", *CONTENT_TABLES)
        return {t: self.sql(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


@pytest.fixture(scope="module")
def deployment(
    databases: TestDatabases, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """docs/deployment.md, "First install", steps 5 to 8 (release, template, users, processes)
    on a scratch database, Redis database TEST_REDIS_URL and a local ImageKit server."""
    if not redis_url:
        pytest.skip("needs a real Redis: set TEST_REDIS_URL")
    database_url = databases.empty("deploy")
    logs = tmp_path_factory.mktemp("deployment")
    secret_key = secrets.token_hex(32)
    flush_redis(redis_url)
    port = free_port()
    with LocalImageKitServer(f"private_{secrets.token_hex(8)}") as imagekit:
        env = server_env(database_url, secret_key, port, redis_url=redis_url)
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            WEB_THREADS="8",
            IMAGEKIT_PRIVATE_KEY=imagekit.private_key,
            IMAGEKIT_BASE_URL=imagekit.base_url,
            IMAGEKIT_URL_ENDPOINT=imagekit.url_endpoint,
            POOL_MASTER_TARGET=str(MASTER_TARGET),
            POOL_USER_TARGET="0",  # the new gamemaster is served from the master pool
            LOG_LEVEL="INFO",
            HEALTH_TOKEN=secrets.token_hex(16),
        )
        deploy = Deployment(env, port, logs, database_url, redis_url, imagekit=imagekit)
        try:
            deploy.run(deploy.processes["release"])
            deploy.run(TEMPLATE_GENERATE)
            out = deploy.run(
                "flask --app app users create gm@example.com --name 'Game Master' "
                "--password 'correct horse battery' --gamemaster --token"
            )
            deploy.token = out.strip().splitlines()[-1].strip()
            deploy.ensure_running()
            yield deploy
        finally:
            deploy.stop()
            flush_redis(redis_url)
            databases.drop(database_url)
        for log in logs.glob("*.log"):  # after the processes ended: the whole logs
            text = log.read_text(errors="replace")
            for secret in (secret_key, imagekit.private_key, deploy.token, env["HEALTH_TOKEN"]):
                assert secret not in text, f"a secret is in {log.name}"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_fresh_deployment_serves_a_campaign_from_the_pool(deployment: Deployment) -> None:
    health = deployment.wait_healthy()
    assert health["checks"]["workers"]["queues"] == {"seeding": 1, "default": 1}
    campaign = deployment.create_campaign("First campaign")
    assert campaign["source"] == "master_pool"
    assert campaign["counts"]["schticks"] == 643
    status, fetched = deployment.request("GET", f"/api/v2/campaigns/{campaign['id']}")
    assert (status, fetched["name"]) == (200, "First campaign")
    # The template's 789 files were uploaded once; pool builds and the create shared them.
    assert deployment.imagekit is not None and deployment.imagekit.calls["upload"] == 789

    import redis
    from rq.cron import CronScheduler, get_cron_job_ids

    client = redis.Redis.from_url(deployment.redis_url)
    try:
        assert len(CronScheduler.all(client)) == 1  # the scheduler process, registered
        for job in ("monitor", "replenish", "cleanup"):
            assert get_cron_job_ids(f"campaign-pool-{job}", client), f"{job} never enqueued"
    finally:
        client.close()
    # ... and a worker ran the scheduled monitor: it records a snapshot per pass.
    deadline = time.monotonic() + 30
    while not deployment.sql("SELECT 1 FROM pool_events WHERE kind = 'snapshot'"):
        assert time.monotonic() < deadline, f"no monitor pass ran\n{deployment.tails()}"
        time.sleep(0.2)


def _fillfactors(deployment: Deployment) -> dict[str, Any]:
    rows = deployment.sql(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('campaigns', 'schticks')"
    )
    return {name: options for name, options in rows}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_rollback_one_release_keeps_every_row(deployment: Deployment) -> None:
    """docs/deployment.md, "Rollback": going back one release (to 0003) drops no data."""
    deployment.ensure_running()
    assert deployment.revision() == HEAD
    kept = deployment.create_campaign("Before the rollback")
    deployment.stop("scheduler", "worker", "web")  # the worker finishes the refill it runs
    before = deployment.counts()
    campaigns = deployment.sql("SELECT id, name, pool_status FROM campaigns ORDER BY id")
    events = deployment.sql("SELECT count(*) FROM pool_events")[0][0]
    assert _fillfactors(deployment) == {
        "campaigns": ["fillfactor=70"],
        "schticks": ["fillfactor=45"],
    }

    deployment.run(ROLLBACK_ONE_RELEASE)
    assert deployment.revision() == PREVIOUS_RELEASE
    assert _fillfactors(deployment) == {
        "campaigns": ["fillfactor=70"],
        "schticks": ["fillfactor=70"],
    }
    assert deployment.counts() == before
    assert deployment.sql("SELECT id, name, pool_status FROM campaigns ORDER BY id") == campaigns
    assert deployment.sql("SELECT count(*) FROM pool_events")[0][0] == events

    deployment.run(deployment.processes["release"])  # the upgrade again
    assert deployment.revision() == HEAD
    deployment.ensure_running()
    assert deployment.create_campaign("After the upgrade")["source"] == "master_pool"
    status, body = deployment.request("GET", f"/api/v2/campaigns/{kept['id']}")
    assert (status, body["name"]) == (200, "Before the rollback")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_rollback_below_the_pool_revision_as_documented(deployment: Deployment) -> None:
    """docs/deployment.md, "Rolling back past 0002": drain the pool, downgrade to 0001 (the pool
    tables and columns go, users, tokens, template and users' campaigns stay), upgrade again,
    restore the template version, and the pool refills and serves."""
    deployment.ensure_running()
    assert deployment.revision() == HEAD
    kept = deployment.create_campaign("Survives the pool rollback")
    deployment.stop("scheduler", "worker", "web")

    deployment.sql(RETIRE_POOL_SQL)
    deployment.run(POOL_CLEANUP)
    assert deployment.sql("SELECT count(*) FROM campaigns WHERE is_pool")[0][0] == 0
    before = deployment.counts()
    owned = deployment.sql("SELECT id, user_id, name FROM campaigns ORDER BY id")

    deployment.run(ROLLBACK_BELOW_POOL)
    assert deployment.revision() == "0001"
    tables = {row[0] for row in deployment.sql("SELECT tablename FROM pg_tables")}
    assert not {"pool_events", "pool_settings"} & tables
    assert deployment.counts() == before
    assert deployment.sql("SELECT id, user_id, name FROM campaigns ORDER BY id") == owned

    deployment.run(deployment.processes["release"])
    # Migration 0002 gives the surviving master template its version back (the pool builds
    # and claims only for the master template's version).
    assert deployment.sql("SELECT template_version FROM campaigns WHERE is_master_template") == [
        (1,)
    ]
    deployment.ensure_running()
    assert deployment.create_campaign("After the pool rollback")["source"] == "master_pool"
    status, body = deployment.request("GET", f"/api/v2/campaigns/{kept['id']}")
    assert (status, body["name"]) == (200, "Survives the pool rollback")
