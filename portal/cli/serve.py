"""`flask --app app serve`: prepare the installation and serve it (the `make run` command).

Thin: options in, `portal.cli.bootstrap.run_server` does the work (migrations, master
template, demo admin, banner, embedded worker, Werkzeug server through Flask-SocketIO).
Production serves with gunicorn instead (`gunicorn -c gunicorn.conf.py wsgi:app`).
"""

from __future__ import annotations

import click

from portal.appcontext import current_flask_app
from portal.cli import bootstrap


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--with-worker",
    is_flag=True,
    help="With REDIS_URL set, also run jobs in a worker thread of this process "
    "(without REDIS_URL the worker thread always runs).",
)
@click.option(
    "--demo-admin/--no-demo-admin",
    default=True,
    show_default=True,
    help="Create (once) and show the demo admin account admin@campaign-pool.local.",
)
def cli(host: str, port: int, with_worker: bool, demo_admin: bool) -> None:
    """Migrate, generate the master template if missing, and serve the portal and API."""
    app = current_flask_app()
    try:
        bootstrap.run_server(app, host, port, with_worker=with_worker, demo_admin=demo_admin)
    except bootstrap.ServeError as exc:
        raise click.ClickException(str(exc)) from None
