"""Shared fixtures in the flaskr style: `app`, `client`, `runner`, `auth`.

Every test gets its own database: an empty migrated one (`app`), or a copy of a database that
already holds the generated master template (`template_app`). PostgreSQL and Redis are used when
TEST_DATABASE_URL / TEST_REDIS_URL are set, SQLite and fakeredis otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import werkzeug.security
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from portal import create_app
from portal.services.accounts import users
from portal.services.pool import claim
from portal.services.seeding import batch
from tests.support.auth import AuthActions
from tests.support.databases import TestDatabases

pytest_plugins = ["tests.support.imagekit", "tests.support.smtp", "tests.support.pg_cluster"]

TEST_SECRET = "test-secret-key-0123456789abcdef"
# Lets a test read /health's details (`X-Health-Token`); the public answer is the status only.
TEST_HEALTH_TOKEN = "test-health-token-0123456789"


# Password hashes in the test process: PBKDF2 at 1,000 rounds (~0.3 ms) instead of the
# production scrypt (~100 ms per hash and per check), which hundreds of sign-ins and users would
# otherwise pay for. The hash's checks are the same code either way; servers started as
# processes (gunicorn, workers) and tests marked `production_password_hash` keep scrypt.
TEST_PASSWORD_HASH = "pbkdf2:sha256:1000"


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_password_hash"):
        return

    def generate(password: str) -> str:
        return werkzeug.security.generate_password_hash(password, method=TEST_PASSWORD_HASH)

    monkeypatch.setattr(users, "generate_password_hash", generate)
    monkeypatch.setattr(users, "_DUMMY_HASH", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        return
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip_pg)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    dbs = TestDatabases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()
    if not dbs.shared_run:  # a mutation run's goldens keep their image files here
        import shutil

        shutil.rmtree(TEST_INSTANCE, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (flushed before each test that uses it), or "" for fakeredis."""
    return os.environ.get("TEST_REDIS_URL", "").strip()


TEST_INSTANCE = Path(os.environ.get("PYTEST_INSTANCE_DIR", "/tmp")) / (
    f"cp-test-{os.environ.get('CAMPAIGN_POOL_TEST_GOLDENS') or os.getpid()}"
)


def make_app(database_url: str, redis_url: str = "", **overrides: Any) -> Flask:
    """An application wired to the given database; the environment cannot leak into tests.

    The instance folder (local image files, the secret key file) is private to the test run."""
    config: dict[str, Any] = {
        "TESTING": True,
        "INSTANCE_PATH": str(TEST_INSTANCE),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "IMAGEKIT_PRIVATE_KEY": "",
        "IMAGEKIT_BASE_URL": "",
        "IMAGEKIT_URL_ENDPOINT": "",
        "MAIL_SERVER": "",
        "SLACK_WEBHOOK_URL": "",
        "ALERT_EMAILS": "",
        "HEALTH_TOKEN": TEST_HEALTH_TOKEN,
    }
    config.update(overrides)
    return create_app(config)


def migrate_database(url: str) -> None:
    from flask_migrate import upgrade

    app = make_app(url)
    with app.app_context():
        upgrade()
        from portal.extensions import db

        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_golden(databases: TestDatabases) -> str:
    """A database at the newest revision and otherwise empty."""
    return databases.golden("migrated", migrate_database)


def flush_redis(url: str) -> None:
    """Empty the test Redis database (nothing for fakeredis, url "")."""
    if url:
        import redis

        redis.Redis.from_url(url).flushdb()


def app_on(
    databases: TestDatabases, golden_url: str, redis_url: str, **overrides: Any
) -> Iterator[Flask]:
    """A fresh copy of `golden_url`, an app on it (inside an app context), dropped afterwards."""
    url = databases.clone(golden_url)
    flush_redis(redis_url)
    # Each app builds its own claim and copy statements (a process may have built them for
    # other code: mutation testing forks every mutant from one that has).
    claim.forget_prebuilt_statements()
    batch.forget_prebuilt_statements()
    app = make_app(url, redis_url, **overrides)
    with app.app_context():
        yield app
        from portal.extensions import db

        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


@pytest.fixture
def app(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    """An app on a fresh, migrated, empty database, inside an app context."""
    yield from app_on(databases, migrated_golden, redis_url)


def build_template_database(url: str, shape: str = "production") -> None:
    """Migrate, then generate the full master template (docs/template-format.md) of `shape`."""
    migrate_database(url)
    app = make_app(url)
    with app.app_context():
        from portal.extensions import db
        from portal.services.images.backend import get_image_store
        from portal.services.template import generate_template

        generate_template(db.session, get_image_store(), shape=shape)
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def template_golden(databases: TestDatabases) -> str:
    """A database holding the generated master template, built once per test session."""
    return databases.golden("template", build_template_database)


@pytest.fixture
def template_app(databases: TestDatabases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    """An app on a private copy of the template database, inside an app context."""
    yield from app_on(databases, template_golden, redis_url)


@pytest.fixture(scope="session")
def rich_template_golden(databases: TestDatabases) -> str:
    """A database holding the generated template of the rich shape (carries, vehicles, image
    positions, juncture->faction links: what other operators' templates have)."""
    return databases.golden("rich_template", lambda url: build_template_database(url, "rich"))


@pytest.fixture
def rich_template_app(
    databases: TestDatabases, rich_template_golden: str, redis_url: str
) -> Iterator[Flask]:
    """An app on a private copy of the rich template database, inside an app context."""
    yield from app_on(databases, rich_template_golden, redis_url)


@pytest.fixture
def app_factory(
    databases: TestDatabases, migrated_golden: str, redis_url: str
) -> Iterator[Callable[..., Flask]]:
    """`app_factory(**settings)`: an app on a fresh, migrated, empty database with these
    settings, inside its app context; as many as a test needs, all dropped afterwards."""
    running: list[Iterator[Flask]] = []

    def build(**overrides: Any) -> Flask:
        generator = app_on(databases, migrated_golden, redis_url, **overrides)
        app = next(generator)
        running.append(generator)
        return app

    yield build
    for generator in reversed(running):
        for _ in generator:
            pass


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Create users and log in/out through the real form (CSRF token scraped from the page)."""
    return AuthActions(client)


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, reports)."""
    path = Path(__file__).parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
