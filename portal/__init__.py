"""Campaign Pool: the application factory.

`create_app` reads as the pipeline it is: settings, logging, extensions, the queue connection,
blueprints, error handlers, CLI. Each step is a small function so a reader can find where any
piece of the application is wired without scrolling through one long function.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from portal.config import ENV_NAMES, ConfigError, Settings, load_settings

__all__ = ["ConfigError", "create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. `config` overrides environment variables (by their documented names,
    docs/configuration.md) and Flask config keys; tests use it to point at their own database and
    queue."""
    config = config or {}
    instance_path = Path(config.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()
    app = Flask(__name__, instance_path=str(instance_path))
    register_settings(app, config)
    register_logging(app)
    register_extensions(app)
    register_rate_limits(app)
    register_security_headers(app)
    register_middleware(app)
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
    from portal.blueprints.admin.socket import origin_check
    from portal.extensions import csrf, db, login_manager, migrate, socketio
    from portal.services.infra.database import (
        close_request_session,
        install_sqlite_pragmas,
        prepare_sqlite_file,
    )

    prepare_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
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
    # (server_options is set in SocketIO.__init__; types-Flask-SocketIO does not declare it.)
    socketio.server_options.pop("client_manager", None)  # type: ignore[attr-defined]
    # Same-origin connections only, plus SOCKETIO_ORIGINS (docs/security.md).
    settings = app.config["SETTINGS"]
    socketio.init_app(
        app,
        async_mode="threading",
        # python-socketio accepts a callable here; types-Flask-SocketIO declares only str | list.
        cors_allowed_origins=origin_check(settings.socketio_origins),  # type: ignore[arg-type]
        message_queue=settings.redis_url or None,
    )


def register_rate_limits(app: Flask) -> None:
    """Flask-Limiter on the app's Redis (in memory on the embedded default); the limits
    themselves are on the routes (docs/security.md)."""
    from portal.extensions import limiter

    redis_url = app.config["SETTINGS"].redis_url
    storage = "memory://"
    if redis_url:
        storage = (
            "redis+unix://" + redis_url[len("unix://") :]
            if redis_url.startswith("unix://")
            else redis_url
        )
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage)
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "campaign-pool")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Redis down: limits fall back to this process's memory instead of failing requests.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)


def register_security_headers(app: Flask) -> None:
    from portal.blueprints.headers import install_security_headers

    install_security_headers(app)


def register_middleware(app: Flask) -> None:
    """ProxyFix and counted request bodies around everything (after Socket.IO's layer)."""
    from portal.blueprints.middleware import install_middleware

    install_middleware(app)


def register_queue(app: Flask) -> None:
    from portal.services.infra.queue import init_queue

    init_queue(app)


def register_images(app: Flask) -> None:
    from portal.services.images.backend import init_image_store

    init_image_store(app)


def register_blueprints(app: Flask) -> None:
    from portal.blueprints import register_all

    register_all(app)


def register_error_handlers(app: Flask) -> None:
    from portal.blueprints.errors import install_error_handlers

    install_error_handlers(app)


# `flask --app app NAME ...`: each command group is the `cli` of its module under portal/cli/.
CLI_MODULES = {
    "users": "portal.cli.users",
    "template": "portal.cli.template",
    "campaigns": "portal.cli.campaigns",
    "pool": "portal.cli.pool",
    "bench": "portal.cli.bench",
    "serve": "portal.cli.serve",
}


class LazyCommands(AppGroup):
    """`app.cli` that imports a command's module only when that command is run or listed.

    The web and worker processes build the app too, and never run a command: they should not
    import the commands (nor the development tools behind `bench` and `pool simulate`). It also
    keeps the application package from importing its own entry points."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        super().__init__()
        self.modules = dict(modules)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.modules and cmd_name not in self.commands:
            self.add_command(importlib.import_module(self.modules[cmd_name]).cli, cmd_name)
        return super().get_command(ctx, cmd_name)


def register_cli(app: Flask) -> None:
    commands = LazyCommands(CLI_MODULES)
    for name, command in app.cli.commands.items():  # what extensions registered already
        commands.add_command(command, name)
    app.cli = commands


def settings_of(app: Flask) -> Settings:
    """The validated settings the app was built with."""
    settings: Settings = app.config["SETTINGS"]
    return settings
