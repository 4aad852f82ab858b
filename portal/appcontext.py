"""Typed access to what Flask's context globals stand for.

`db.session` and `current_app` are proxies that resolve inside an app context. Services take a
real `Session` and threads need the real app, so the entry points (blueprints, CLI, jobs, dev
tools) hand them these instead of the proxies: `db_session()` (the session of this app
context) and `current_flask_app()` (the app itself, to hand to a thread or keep).
"""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from portal.extensions import db


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
