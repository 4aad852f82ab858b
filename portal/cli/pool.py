"""`flask --app app pool status|replenish [--wait]`."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from portal.extensions import db
from portal.services.pool_metrics import pool_status
from portal.services.queue import get_redis
from portal.services.replenish import enqueue_replenish, replenish_all

cli = AppGroup("pool", help="Inspect and refill the campaign pools.")


@cli.command("status")
def status() -> None:
    """Print the pool payload of /admin/api/pool as JSON."""
    click.echo(json.dumps(pool_status(db.session, current_app.config["SETTINGS"]), indent=2))


@cli.command("replenish")
@click.option("--wait", is_flag=True, help="Refill here and now, with progress, until done.")
def replenish(wait: bool) -> None:
    """Refill the master pool and every gamemaster's pool to their targets.

    Without --wait a job is queued for the workers. With the embedded queue (no REDIS_URL) there
    is no worker outside the web process, so the refill always runs here."""
    settings = current_app.config["SETTINGS"]
    if not wait and not settings.embedded_queue:
        job_id = enqueue_replenish(get_redis(), "all")
        if job_id is None:
            click.echo("a refill is already queued (or Redis is unreachable); nothing added")
        else:
            click.echo(f"queued refill job {job_id}; watch it at /admin/rq")
        return
    with click.progressbar(
        length=0, label="building pool campaigns", file=click.get_text_stream("stderr")
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(bar.length or 0, total)
            bar.update(1)

        reports = replenish_all(db.session, get_redis(), settings, progress=progress)
    click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    if any(r.failed for r in reports):
        raise click.ClickException("some pool campaigns failed to build; see the log")
