"""`flask --app app bench`: seeding and assignment figures of DESIGN section 7, as one JSON object.

The JSON alone goes to stdout (so a script can `| jq .ratio`); the progress bar and status lines
go to stderr. The measuring itself, on a scratch database, is `portal.services.bench`.
"""

from __future__ import annotations

import json
import sys

import click
from flask import current_app

from portal.services.bench import BenchPlan, run_bench


@click.command("bench")
@click.option("--runs", default=10, show_default=True, help="Timed batch-seeding runs.")
@click.option(
    "--traditional-runs", default=3, show_default=True, help="Timed traditional runs (slow)."
)
@click.option("--baseline-runs", default=5, show_default=True, help="Timed DESIGN 7 baseline runs.")
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
def cli(
    runs: int,
    traditional_runs: int,
    baseline_runs: int,
    assign_runs: int,
    warmup: int,
    background: int,
    copy_run: bool,
) -> None:
    """Measure seeding and assignment speed on a scratch database (DESIGN section 7)."""
    try:
        plan = BenchPlan(
            batch_runs=runs,
            traditional_runs=traditional_runs,
            baseline_runs=baseline_runs,
            assign_runs=assign_runs,
            warmup=warmup,
            background=background,
            copy_run=copy_run,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    settings = current_app.config["SETTINGS"]
    click.echo("bench: building a scratch database with the master template ...", err=True)
    with click.progressbar(
        length=plan.units, label="bench", file=sys.stderr, show_pos=True, item_show_func=str
    ) as bar:

        def tick(label: str) -> None:
            bar.update(1, label)

        figures = run_bench(settings.database_url, settings.secret_key, plan, tick)
    click.echo(json.dumps(figures))
