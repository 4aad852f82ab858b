"""`flask --app app pool status|replenish [--wait]|cleanup|monitor|switch`."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from portal.appcontext import db_session
from portal.services.infra.queue import enqueue_replenish, get_redis
from portal.services.monitoring.payload import admin_pool_payload
from portal.services.pool.replenish import replenish_all

cli = AppGroup("pool", help="Inspect and refill the campaign pools.")


@cli.command("status")
def status() -> None:
    """Print the pool payload of /admin/api/pool as JSON."""
    payload = admin_pool_payload(db_session(), current_app.config["SETTINGS"], get_redis())
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
    with click.progressbar(length=0, label="building pool campaigns", file=sys.stderr) as bar:
        built = 0

        def progress(done: int, total: int) -> None:
            nonlocal built
            bar.length = max(bar.length or 0, total)
            bar.update(done - built)  # a build may bring several campaigns at once
            built = done

        # The refill runs in this process and reports what it built: no helper workers share it
        reports = replenish_all(
            db_session(), get_redis(), settings, progress=progress, fan_out=False
        )
    click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    if any(r.failed for r in reports):
        raise click.ClickException("some pool campaigns failed to build; see the log")


@cli.command("switch")
@click.argument("name", type=click.Choice(["assignment", "refills"]))
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--reason", default=None, help="Why (recorded on the switch event).")
def switch(name: str, state: str, reason: str | None) -> None:
    """Switch pool assignment (the kill switch: off = every create is seeded, nothing is
    claimed) or refills (off = paused) at runtime, for every process; recorded as an event."""
    import getpass

    from portal.services.pool.switches import set_switch, switch_states

    settings = current_app.config["SETTINGS"]
    changed = set_switch(
        db_session(),
        settings,
        name,
        state == "on",
        actor=f"cli:{getpass.getuser()}",
        reason=reason,
    )
    if changed and name == "refills" and state == "on" and not settings.embedded_queue:
        enqueue_replenish(get_redis(), "all")
    click.echo(json.dumps({"changed": changed, **switch_states(db_session(), settings)}, indent=2))


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

    from portal.services.images.backend import get_image_store
    from portal.services.pool.cleanup import MAX_READY_AGE, cleanup_pool

    settings = current_app.config["SETTINGS"]
    report = cleanup_pool(
        db_session(),
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
    from portal.services.monitoring.monitor import run_monitor

    settings = current_app.config["SETTINGS"]
    # Without REDIS_URL this process has its own in-process queue: no worker can be seen on
    # it and nothing would run a refill queued on it.
    report = run_monitor(
        db_session(),
        get_redis(),
        settings,
        check_workers=not settings.embedded_queue,
        enqueue_refills=not settings.embedded_queue,
    )
    click.echo(json.dumps(report.as_dict(), indent=2))


@cli.command("simulate")
@click.option("--rate", type=float, default=0.5, show_default=True, help="Base claims per minute.")
@click.option(
    "--burst",
    "bursts",
    multiple=True,
    metavar="AT:SIZE[:OVER]",
    help="Extra claims: SIZE of them from minute AT over OVER minutes (default 2). Repeatable.",
)
@click.option("--duration", type=float, default=360, show_default=True, help="Minutes replayed.")
@click.option(
    "--lead-time", type=float, default=60, show_default=True, help="Seconds a refill takes."
)
@click.option(
    "--fixed-target",
    type=int,
    default=None,
    help="Target of the fixed variant (default: POOL_MASTER_TARGET, 5).",
)
@click.option("--demand-min", type=int, default=None, help="Demand sizing floor (default: env).")
@click.option("--demand-max", type=int, default=None, help="Demand sizing ceiling (default: env).")
@click.option("--half-life", type=int, default=15, show_default=True, help="Minutes.")
@click.option("--service-level", type=int, default=95, show_default=True, help="Percent.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of arrivals.")
@click.option(
    "--postgres",
    "postgres_url",
    default=None,
    metavar="URL",
    help="Put the scratch database on this PostgreSQL server (default: a temporary SQLite file).",
)
def simulate(
    rate: float,
    bursts: tuple[str, ...],
    duration: float,
    lead_time: float,
    fixed_target: int | None,
    demand_min: int | None,
    demand_max: int | None,
    half_life: int,
    service_level: int,
    seed: int,
    postgres_url: str | None,
) -> None:
    """Replay a demand pattern on a scratch database with a fixed target and with demand
    sizing; print both as JSON (stdout) and as a table (stderr)."""
    from portal.cli.progress import progress
    from portal.config import ConfigError, normalize_database_url
    from portal.devtools.simulate import (
        Burst,
        SimulationError,
        SimulationPlan,
        format_table,
        run_simulation,
    )
    from portal.services.pool.config import env_defaults

    settings = current_app.config["SETTINGS"]
    defaults = env_defaults(settings)
    try:
        plan = SimulationPlan(
            rate_per_min=rate,
            bursts=tuple(Burst.parse(raw) for raw in bursts),
            duration_min=duration,
            lead_time_s=lead_time,
            fixed_target=defaults["master_target"] if fixed_target is None else fixed_target,
            demand_min=defaults["demand_min"] if demand_min is None else demand_min,
            demand_max=defaults["demand_max"] if demand_max is None else demand_max,
            half_life_min=half_life,
            service_level=service_level,
            seed=seed,
        )
        server = "sqlite://"
        if postgres_url is not None:
            server = normalize_database_url(postgres_url, "--postgres")
            if not server.startswith("postgresql"):
                raise SimulationError("--postgres needs a postgresql:// URL")
    except (SimulationError, ConfigError) as error:
        raise click.BadParameter(str(error)) from None
    arrivals = len(plan.arrivals())
    click.echo(
        f"pool simulate: {arrivals} claims over {plan.duration_min:g} min, twice "
        "(fixed target, demand sizing), each on a new scratch database ...",
        err=True,
    )
    with progress(2 * arrivals, "simulate") as tick:
        try:
            figures = run_simulation(server, settings.secret_key, plan, tick)
        except RuntimeError as error:
            raise click.ClickException(str(error)) from None
    click.echo(format_table(figures), err=True)
    click.echo(json.dumps(figures))
