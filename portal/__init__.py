"""Campaign Pool: the application factory.

`create_app` reads as the pipeline it is: settings, logging, extensions, the queue connection,
blueprints, error handlers, CLI. Each step is a small function so a reader can find where any
piece of the application is wired without scrolling through one long function.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from portal.config import ENV_NAMES, ConfigError, Settings, load_settings

__all__ = ["ConfigError", "create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. `config` overrides environment variables (by their DESIGN names)
    and Flask config keys; tests use it to point at their own database and queue."""
    config = config or {}
    instance_path = Path(config.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()
    app = Flask(__name__, instance_path=str(instance_path))
    register_settings(app, config)
    register_logging(app)
    register_extensions(app)
    register_queue(app)
    register_images(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)
    return app


def register_settings(app: Flask, overrides: Mapping[str, Any]) -> None:
    import os

    env = dict(os.environ)
    env.update({k: str(v) for k, v in overrides.items() if k in ENV_NAMES and v is not None})
    settings = load_settings(env, Path(app.instance_path))
    app.config.from_mapping(settings.flask_config())
    app.config.from_mapping({k: v for k, v in overrides.items() if k not in ENV_NAMES})


def register_logging(app: Flask) -> None:
    from portal.logs import configure_logging

    configure_logging(app)


def register_extensions(app: Flask) -> None:
    from portal import models  # noqa: F401  (every model registered before migrations run)
    from portal.extensions import csrf, db, login_manager, migrate, socketio
    from portal.services.database import close_request_session, install_sqlite_pragmas

    db.init_app(app)
    # Runs before Flask-SQLAlchemy's own teardown (teardowns run in reverse order), which then
    # finds nothing left to close.
    app.teardown_appcontext(lambda _exc: close_request_session(db.session))
    with app.app_context():
        install_sqlite_pragmas(db.engine)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "warning"
    # With REDIS_URL, emits (from any web process or RQ worker) travel through Redis to every
    # web process's browsers. The stale client manager of an earlier app must not be reused.
    socketio.server_options.pop("client_manager", None)
    redis_url = app.config["SETTINGS"].redis_url
    socketio.init_app(
        app, async_mode="threading", cors_allowed_origins=[], message_queue=redis_url or None
    )


def register_queue(app: Flask) -> None:
    from portal.services.queue import init_queue

    init_queue(app)


def register_images(app: Flask) -> None:
    from portal.services.image_store import init_image_store

    init_image_store(app)


def register_blueprints(app: Flask) -> None:
    from portal.blueprints import register_all

    register_all(app)


def register_error_handlers(app: Flask) -> None:
    from portal.blueprints.errors import install_error_handlers

    install_error_handlers(app)


def register_cli(app: Flask) -> None:
    from portal.cli import register_commands

    register_commands(app)


def settings_of(app: Flask) -> Settings:
    """The validated settings the app was built with."""
    return app.config["SETTINGS"]
