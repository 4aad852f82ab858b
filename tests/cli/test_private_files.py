"""Files that hold secrets or hashes are private, and start-up problems are one clear line
(docs/security.md): the instance folder is created 0700 whatever is configured, the SQLite
database, generated secret key and demo credentials are 0600, and `flask serve` that cannot
open its database names DATABASE_URL in one line instead of printing a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from flask import Flask

from portal import create_app
from portal.cli import bootstrap
from tests.cli.test_serve import FLASK_SERVE, PASSED_THROUGH, free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def embedded_app(instance: Path, **config: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "IMAGEKIT_PRIVATE_KEY": "",
            **config,
        }
    )


def test_secret_key_set_and_no_database_url_still_gets_a_private_database(tmp_path) -> None:
    """The README's production example on the embedded default: SECRET_KEY set, no
    DATABASE_URL, no instance folder yet (it used to be made only for a generated key)."""
    instance = tmp_path / "fresh" / "instance"
    app = embedded_app(instance, SECRET_KEY="s" * 32)
    bootstrap.run_migrations(app)
    assert mode(instance) == 0o700
    database = instance / "campaign_pool.sqlite3"
    assert mode(database) == 0o600
    for extra in instance.glob("campaign_pool.sqlite3-*"):  # WAL and shared memory
        assert mode(extra) & 0o077 == 0, extra
    assert not (instance / "secret_key").exists()


def test_generated_secret_and_demo_credentials_are_private(tmp_path) -> None:
    instance = tmp_path / "instance"
    app = embedded_app(instance, SECRET_KEY="")
    assert mode(instance) == 0o700 and mode(instance / "secret_key") == 0o600
    bootstrap.run_migrations(app)
    from portal.extensions import db

    with app.app_context():
        bootstrap.ensure_demo_admin(db.session, app.instance_path)
        db.engine.dispose()
    assert mode(bootstrap.credentials_path(instance)) == 0o600
    assert mode(instance / "campaign_pool.sqlite3") == 0o600


def test_a_configured_sqlite_file_is_private_too(tmp_path) -> None:
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    app = embedded_app(
        tmp_path / "instance",
        SECRET_KEY="s" * 32,
        DATABASE_URL=f"sqlite:///{elsewhere / 'pool.db'}",
    )
    bootstrap.run_migrations(app)
    assert mode(elsewhere / "pool.db") == 0o600


def test_serve_says_in_one_line_that_it_cannot_open_the_database(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
    env.update(
        SECRET_KEY="s" * 32,
        DATABASE_URL=f"sqlite:///{tmp_path}/missing-folder/pool.sqlite3",
        PYTHONUNBUFFERED="1",
    )
    result = subprocess.run(
        [*FLASK_SERVE, "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "cannot open the database DATABASE_URL=sqlite:///" in errors[0]
    assert "unable to open database file" in errors[0]
