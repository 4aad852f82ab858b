"""`flask --app app pool status|replenish [--wait]|cleanup|monitor`."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from portal.extensions import db
from portal.services.portal_metrics import admin_pool_payload
from portal.services.queue import get_redis
from portal.services.replenish import enqueue_replenish, replenish_all

cli = AppGroup("pool", help="Inspect and refill the campaign pools.")


@cli.command("status")
def status() -> None:
    """Print the pool payload of /admin/api/pool as JSON."""
    payload = admin_pool_payload(db.session, current_app.config["SETTINGS"], get_redis())
    click.echo(json.dumps(payload, indent=2, default=str))


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


@cli.command("cleanup")
@click.option(
    "--max-age-days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Delete ready pool campaigns older than this (default: 30 days).",
)
def cleanup(max_age_days: int | None) -> None:
    """Delete failed, retired and abandoned pool campaigns with their content, purge blobs
    no attachment uses any more, and print what was removed (JSON)."""
    from datetime import timedelta

    from portal.services.cleanup import MAX_READY_AGE, cleanup_pool
    from portal.services.image_store import get_image_store

    settings = current_app.config["SETTINGS"]
    report = cleanup_pool(
        db.session,
        settings,
        None if settings.embedded_queue else get_redis(),
        store=get_image_store(),
        max_ready_age=timedelta(days=max_age_days) if max_age_days else MAX_READY_AGE,
    )
    click.echo(json.dumps(report.as_dict(), indent=2))
    if report.file_errors:
        raise click.ClickException("some stored files could not be deleted; see the log")


@cli.command("monitor")
def monitor() -> None:
    """Run one monitor pass now (levels, refills, reaping, snapshot, alerts); print its report.

    Also the watchdog for production: run from system cron, it alerts even when no worker is
    alive to run the scheduled monitor job."""
    from portal.services.monitor import run_monitor

    settings = current_app.config["SETTINGS"]
    # Without REDIS_URL this process has its own in-process queue: no worker can be seen on
    # it and nothing would run a refill queued on it.
    report = run_monitor(
        db.session,
        get_redis(),
        settings,
        check_workers=not settings.embedded_queue,
        enqueue_refills=not settings.embedded_queue,
    )
    click.echo(json.dumps(report.as_dict(), indent=2))
