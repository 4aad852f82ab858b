"""`flask --app app bench`: seeding and assignment figures of docs/performance.md, as one JSON
object.

`bench --http` measures `POST /api/v2/campaigns` through gunicorn instead (one client, then a
burst of concurrent clients) and prints `{"http": {...}}`; the other options are then unused.
The JSON alone goes to stdout (so a script can `| jq .ratio`); the progress bar and status lines
go to stderr. The measuring itself, on a scratch database, is `portal.devtools.bench` and
`portal.devtools.bench_http`.
"""

from __future__ import annotations

import json

import click
from flask import current_app

from portal.cli.progress import progress
from portal.devtools.bench import BenchPlan, run_bench
from portal.devtools.bench_http import HttpBenchPlan, run_http_bench


@click.command("bench")
@click.option("--runs", default=10, show_default=True, help="Timed batch-seeding runs.")
@click.option(
    "--traditional-runs", default=3, show_default=True, help="Timed traditional runs (slow)."
)
@click.option(
    "--baseline-runs",
    default=5,
    show_default=True,
    help="Timed runs of the row-at-a-time baseline.",
)
@click.option("--assign-runs", default=10, show_default=True, help="Timed pool claims (0 to skip).")
@click.option("--warmup", default=1, show_default=True, help="Untimed runs before each series.")
@click.option(
    "--background",
    default=20,
    show_default=True,
    help="Campaigns seeded (untimed) before measuring, so the database is not template-only.",
)
@click.option(
    "--copy-run/--no-copy-run",
    default=True,
    show_default=True,
    help="Also seed once in copy mode to count the uploads sharing saves.",
)
@click.option(
    "--template",
    "template_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Measure on this template file (imported, streamed) instead of the generated template.",
)
@click.option(
    "--batch-many-runs",
    default=5,
    show_default=True,
    help="Timed runs of seeding K = 1, 5, 20 campaigns in one transaction (0 to skip).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Also profile one K = 1 and one K = 20 seed phase by phase with EXPLAIN (ANALYZE, "
    "BUFFERS) (PostgreSQL): `batch_profile` in the JSON.",
)
@click.option(
    "--http", "http_mode", is_flag=True, help="Load POST /api/v2/campaigns through gunicorn."
)
@click.option(
    "--ramp",
    is_flag=True,
    help="--http: the 1-4-8-16 ramp with 1, 2 and 4 refill workers and the seeding limit, in "
    "one run (needs --redis-url); prints {seeding_limit_rps, ramp: [...]} and a table (stderr).",
)
@click.option("--ramp-workers", default="1,2,4", show_default=True, help="--ramp: refill workers.")
@click.option("--ramp-clients", default="1,4,8,16", show_default=True, help="--ramp: steps.")
@click.option(
    "--ramp-per-client", default=20, show_default=True, help="--ramp: creates per client per step."
)
@click.option("--pool-target", default=50, show_default=True, help="--ramp: master pool target.")
@click.option(
    "--batch-size", default=10, show_default=True, help="--ramp: K, campaigns per refill build."
)
@click.option(
    "--limit-seconds", default=10.0, show_default=True, help="--ramp: seeding limit run time."
)
@click.option("--sequential", default=200, show_default=True, help="--http: one-client creates.")
@click.option("--clients", default=16, show_default=True, help="--http: burst client threads.")
@click.option("--per-client", default=25, show_default=True, help="--http: creates per client.")
@click.option("--http-warmup", default=10, show_default=True, help="--http: untimed creates.")
@click.option("--workers", default=1, show_default=True, help="--http: gunicorn processes.")
@click.option("--threads", default=16, show_default=True, help="--http: threads per process.")
@click.option(
    "--redis-url",
    default=None,
    help="--http: the server's REDIS_URL (default none: refill jobs stay in-process, unrun). "
    "Use a Redis database no RQ worker listens on.",
)
def cli(
    runs: int,
    traditional_runs: int,
    baseline_runs: int,
    assign_runs: int,
    warmup: int,
    background: int,
    copy_run: bool,
    template_path: str | None,
    batch_many_runs: int,
    profile: bool,
    http_mode: bool,
    sequential: int,
    clients: int,
    per_client: int,
    http_warmup: int,
    workers: int,
    threads: int,
    redis_url: str | None,
    ramp: bool,
    ramp_workers: str,
    ramp_clients: str,
    ramp_per_client: int,
    pool_target: int,
    batch_size: int,
    limit_seconds: float,
) -> None:
    """Measure seeding and assignment speed on a scratch database (docs/performance.md)."""
    if http_mode and ramp:
        _ramp(
            redis_url,
            _numbers(ramp_workers, "--ramp-workers"),
            _numbers(ramp_clients, "--ramp-clients"),
            ramp_per_client,
            pool_target,
            batch_size,
            limit_seconds,
            threads,
        )
        return
    if http_mode:
        _http(sequential, clients, per_client, http_warmup, workers, threads, redis_url)
        return
    try:
        plan = BenchPlan(
            batch_runs=runs,
            traditional_runs=traditional_runs,
            baseline_runs=baseline_runs,
            assign_runs=assign_runs,
            warmup=warmup,
            background=background,
            copy_run=copy_run,
            template_path=template_path,
            batch_many_runs=batch_many_runs,
            profile=profile,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    settings = current_app.config["SETTINGS"]
    source = f"the template {template_path}" if template_path else "the master template"
    click.echo(f"bench: building a scratch database with {source} ...", err=True)
    with progress(plan.units, "bench") as tick:
        figures = run_bench(settings.database_url, settings.secret_key, plan, tick)
    click.echo(json.dumps(figures))


def _http(
    sequential: int,
    clients: int,
    per_client: int,
    warmup: int,
    workers: int,
    threads: int,
    redis_url: str | None,
) -> None:
    try:
        plan = HttpBenchPlan(
            sequential=sequential,
            clients=clients,
            per_client=per_client,
            warmup=warmup,
            workers=workers,
            threads=threads,
            redis_url=redis_url or None,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    settings = current_app.config["SETTINGS"]
    click.echo(
        f"bench --http: scratch database, {plan.total_requests} pool campaigns, "
        f"then {plan.server_label} ...",
        err=True,
    )
    with progress(plan.units, "bench") as tick:
        try:
            figures = run_http_bench(settings.database_url, settings.secret_key, plan, tick)
        except RuntimeError as error:  # the server did not start, a Redis with workers, ...
            raise click.ClickException(str(error)) from None
    click.echo(json.dumps(figures))


def _numbers(raw: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{option} takes whole numbers separated by commas") from None
    if not values:
        raise click.BadParameter(f"{option} needs at least one number")
    return values


def _ramp(
    redis_url: str | None,
    workers: tuple[int, ...],
    clients: tuple[int, ...],
    per_client: int,
    pool_target: int,
    batch_size: int,
    limit_seconds: float,
    threads: int,
) -> None:
    from portal.devtools.ramp import RampPlan, run_ramp, table

    try:
        plan = RampPlan(
            redis_url=redis_url or "",
            workers=workers,
            clients=clients,
            per_client=per_client,
            pool_target=pool_target,
            batch_size=batch_size,
            limit_seconds=limit_seconds,
            threads=threads,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    settings = current_app.config["SETTINGS"]
    click.echo(
        f"bench --http --ramp: seeding limit, then {','.join(map(str, clients))} clients with "
        f"{','.join(map(str, workers))} refill workers ...",
        err=True,
    )
    with progress(plan.units, "ramp") as tick:
        try:
            figures = run_ramp(settings.database_url, settings.secret_key, plan, tick)
        except RuntimeError as error:
            raise click.ClickException(str(error)) from None
    click.echo(table(figures), err=True)
    click.echo(json.dumps(figures))
