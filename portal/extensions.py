"""Flask extensions, instantiated and nothing else: `create_app` binds them to an app; and the
typed ways to reach what Flask's context globals proxy: `db_session()` (the session to hand a
service) and `current_flask_app()` (the app itself, to hand a thread or keep)."""

from typing import cast

from flask import Flask, current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from portal.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
socketio = SocketIO()


def db_session() -> Session:
    """The session of the current app context (a request, a CLI command, a job).

    `db.session` is a `scoped_session` proxy, which is not a `Session` to a type checker;
    services take a `Session`, so entry points pass them this: the very session the proxy would
    forward to (the one for this app context, created on first use, removed at teardown)."""
    return db.session()


def current_flask_app() -> Flask:
    """The application behind `current_app`, not the proxy (which resolves only inside the
    context, so it cannot be handed to another thread or kept).

    Flask declares `current_app` as a `Flask`, which hides the proxy's own accessor; it is a
    werkzeug `LocalProxy`, and this is the one place that says so."""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()
