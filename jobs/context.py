"""How a job gets an application: the one already running, or one built from the environment.

A job is executed in one of three places, and each needs a different app:

* inside the embedded worker thread of a web process: the web process's own app, so the job
  sees the same database and the same in-process fakeredis (a second `create_app()` would get a
  fresh, empty fakeredis and could not report back);
* inside code that already has an app context (a test running a job synchronously): that app;
* inside a real `rq worker` process: an app built once per process from the environment, which
  is why workers must be started with the same environment as the web process.

Every job gets a fresh app context, hence its own database session, removed when the job ends:
a job can never see, or leave behind, another job's half-finished transaction.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, has_app_context

from portal.appcontext import current_flask_app
from portal.runtime import current_embedded_app

log = logging.getLogger("jobs.context")

_lock = threading.Lock()
_process_app: Flask | None = None
_process_app_pid: int | None = None


def process_app() -> Flask:
    """The app of a standalone worker process, created on first use and then reused, because
    building an app (imports, settings, engine, extensions) costs more than most jobs.

    RQ's default worker forks a work horse per job, and a cache filled inside a horse dies with
    it; `jobs.worker.AppWorker` calls this in the worker process before it forks, so every horse
    inherits the app."""
    global _process_app, _process_app_pid
    with _lock:
        if _process_app is None:
            from portal import create_app

            _process_app = create_app()
            _process_app_pid = os.getpid()
            log.info("jobs.app_created", extra={"database": _redacted_db(_process_app)})
        return _process_app


def process_app_pid() -> int | None:
    """The pid of the process that built `process_app()` (a horse's parent when inherited)."""
    return _process_app_pid


def _redacted_db(app: Flask) -> str:
    url: str = app.config["SETTINGS"].redacted()["database_url"]
    return url


def current_job_app() -> Flask:
    """The app a job running here should use (see the module docstring for the order)."""
    if has_app_context():
        return current_flask_app()
    embedded = current_embedded_app()
    if embedded is not None:
        return embedded
    return process_app()


@contextmanager
def app_context() -> Iterator[Flask]:
    """`with app_context() as app:` — a fresh app context (and database session) for one job."""
    app = current_job_app()
    with app.app_context():
        yield app


def report_progress(**fields: Any) -> None:
    """Record progress on the current RQ job's `meta` (visible in rq-dashboard and to whoever
    polls the job); a no-op when the function is called outside a job, e.g. from the CLI."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        return
    job.meta.update(fields)
    job.save_meta()
