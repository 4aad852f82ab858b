"""`flask --app app bench` on a tiny run count: one JSON object on stdout with the figures of
docs/performance.md, measured on a scratch database that is gone afterwards. Timings themselves are
not asserted (they belong to the bench run, not to a test)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from portal.devtools.bench import BenchPlan, summarize
from portal.extensions import db
from portal.models import Campaign
from tests.support.small_template import FULL_SHAPE

TINY = [
    "bench",
    "--runs",
    "2",
    "--traditional-runs",
    "1",
    "--baseline-runs",
    "1",
    "--assign-runs",
    "1",
    "--warmup",
    "0",
    "--background",
    "1",
    "--batch-many-runs",
    "1",
]


def bench_databases() -> set[str]:
    """Scratch bench databases on the PostgreSQL server (empty on SQLite)."""
    if db.engine.dialect.name != "postgresql":
        return set()
    with db.engine.connect() as conn:
        return set(
            conn.scalars(
                sa.text(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'campaign_pool_bench_%'"
                )
            )
        )


@contextlib.contextmanager
def scratch_databases_created() -> Iterator[set[str]]:
    """The scratch databases a bench run in the block creates (from its `bench.database_created`
    log lines): other engineers' runs on the shared server come and go meanwhile, so "nothing
    left behind" is checked for these, not for whatever appeared on the server."""
    created: set[str] = set()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "bench.database_created":
                created.add(record.__dict__["database"])

    logger = logging.getLogger("portal.bench")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield created
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_bench_prints_one_json_object_with_the_figures(app, runner):
    postgres = db.engine.dialect.name == "postgresql"
    with scratch_databases_created() as created:
        result = runner.invoke(args=[*TINY, "--copy-run", *(["--profile"] if postgres else [])])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # stdout is the JSON and nothing else

    assert figures["database"] == db.engine.dialect.name
    for key in ("traditional_ms", "batch_ms"):
        assert set(figures[key]) >= {"median", "p95"}
        assert 0 < figures[key]["median"] <= figures[key]["p95"]
    assert figures["batch_ms"]["runs"] == 2 and figures["traditional_ms"]["runs"] == 1
    assert figures["ratio"] == round(
        figures["traditional_ms"]["median"] / figures["batch_ms"]["median"], 1
    )
    assert figures["rows_per_campaign"] == 1733  # production shape: no carries or positions
    uploads = figures["imagekit_uploads"]
    assert uploads["share"] == 0 and uploads["share_blobs_created"] == 0
    assert uploads["copy_per_campaign"] == uploads["copy_blobs_per_campaign"] == 788
    assert uploads["template_generation"] == 105  # one file per distinct image
    assert figures["template"]["source"] == "generated"
    assert figures["template"]["image_blobs"] == 105
    baseline = figures["baseline"]
    assert baseline["tables"] == ["schticks", "weapons", "image_attachments"]
    assert baseline["rows"] == 643 + 86 + 643 + 86
    assert baseline["row_by_row_ms"]["median"] > 0 and baseline["set_based_ms"]["median"] > 0
    assert figures["assignment_ms"] is None or figures["assignment_ms"]["runs"] == 1
    many = figures["batch_many_ms"]
    assert set(many) == {"1", "5", "20", "ratio"}
    for k in ("1", "5", "20"):
        assert many[k]["per_campaign_median"] > 0 and many[k]["runs"] == 1
        assert many[k]["transaction_median"] == pytest.approx(
            many[k]["per_campaign_median"] * int(k), rel=0.01
        )
    assert set(many["ratio"]) == {"20_vs_1"}
    if postgres:  # EXPLAIN (ANALYZE, BUFFERS) of each phase of a K = 1 and a K = 20 seed
        profile = figures["batch_profile"]
        assert set(profile) == {"1", "20"}
        for k, run in profile.items():
            phases = run["phases"]
            assert set(phases) == {"map", "copy", "mark_seeded", "commit"}
            assert phases["map"]["execution_ms"] > 0
            copy = phases["copy"]
            assert copy["trigger_calls"] > 0 and copy["execution_ms"] > 0
            assert copy["tables"]["schticks"]["rows"] == FULL_SHAPE["schticks"] * int(k)
            images = FULL_SHAPE["image_attachments"]
            assert copy["tables"]["image_attachments"]["rows"] == images * int(k)
    else:
        assert "batch_profile" not in figures
    # The progress bar and status lines went to stderr.
    assert "bench" in result.stderr

    # Measured elsewhere: the configured database got nothing, the scratch one is gone.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0
    # The scratch database the run created is gone.
    assert len(created) == (1 if db.engine.dialect.name == "postgresql" else 0)
    assert not created & bench_databases()


def test_bench_on_an_imported_template_file(template_app, tmp_path):
    """`bench --template PATH` imports the file (streamed) into the scratch database and
    measures on it, saying which template it measured."""
    path = tmp_path / "template.json"
    runner = template_app.test_cli_runner()
    assert runner.invoke(args=["template", "export", str(path)]).exit_code == 0
    result = runner.invoke(
        args=[*TINY, "--no-copy-run", "--assign-runs", "0", "--template", str(path)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["template"]["source"] == str(path)
    assert figures["template"]["image_blobs"] == 105
    assert figures["rows_per_campaign"] == 1733
    assert figures["imagekit_uploads"]["share"] == 0
    assert figures["imagekit_uploads"]["template_generation"] == 105
    missing = runner.invoke(args=[*TINY, "--template", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_bench_refuses_a_run_count_below_one(app, runner):
    result = runner.invoke(args=["bench", "--runs", "0"])
    assert result.exit_code == 2
    assert "batch_runs must be at least 1" in result.output
    assert result.stdout == ""


def test_summary_uses_nearest_rank_p95():
    samples = [float(n) for n in range(1, 21)]  # 1..20
    figures = summarize(samples)
    assert figures["median"] == 10.5 and figures["p95"] == 19.0
    assert figures["min"] == 1.0 and figures["max"] == 20.0 and figures["runs"] == 20
    assert summarize([7.0])["p95"] == 7.0


def test_plan_counts_every_unit_the_progress_bar_shows():
    plan = BenchPlan(
        batch_runs=2,
        traditional_runs=1,
        baseline_runs=1,
        assign_runs=1,
        warmup=1,
        background=3,
        copy_run=True,
        batch_many_runs=2,
    )
    # template + background + (2+1) batch + (1+1) traditional + 2*(1+1) baseline
    # + 2*(1+1) pool builds and claims + copy run + 2 runs and 2 warm-ups of K = 1, 5, 20
    assert plan.units == 1 + 3 + 3 + 2 + 4 + 4 + 1 + 3 * 4
    assert BenchPlan(profile=True).units == BenchPlan().units + 2
