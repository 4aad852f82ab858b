"""`flask --app app bench --http` on a tiny load: a real gunicorn on a scratch PostgreSQL database,
one JSON object on stdout, no campaign handed out twice, no 5xx, and nothing left behind (the
scratch database dropped, the server stopped). Timings are not asserted: they belong to a bench
run on a quiet machine, not to a test."""

from __future__ import annotations

import contextlib
import json

import psutil
import pytest

from portal.devtools.bench_http import HttpBenchPlan
from portal.services.infra.percentiles import percentile
from tests.devtools.test_bench import bench_databases, scratch_databases_created

TINY = ["bench", "--http", "--sequential", "5", "--clients", "2", "--per-client", "3"]


def _server_children() -> list[int]:
    """gunicorn processes this test process started and that are still alive."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "gunicorn" in " ".join(child.cmdline()):
                found.append(child.pid)
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_bench_http_loads_gunicorn_and_finds_no_duplicates(app, runner):
    with scratch_databases_created() as created:
        result = runner.invoke(args=[*TINY, "--http-warmup", "1", "--threads", "4"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["http"]  # stdout is the JSON and nothing else

    assert figures["database"] == "postgresql"
    assert figures["server"] == "gunicorn -w 1 --threads 4"
    sequential, burst = figures["sequential"], figures["burst"]
    assert sequential["requests"] == 5
    assert burst["clients"] == 2 and burst["requests"] == 6
    for phase in (sequential, burst):
        assert phase["errors_5xx"] == 0 and phase["errors_other"] == 0
        assert phase["duplicates"] == 0
        # The pool was filled to cover the run: every create is pool-served.
        assert phase["pool_hit_rate"] == 1.0
        assert phase["sources"] == {"master_pool": phase["requests"]}
        assert 0 < phase["p50_ms"] <= phase["p95_ms"] <= phase["p99_ms"]
    assert burst["throughput_rps"] > 0 and burst["pool_served_rps"] == burst["throughput_rps"]
    checks = figures["checks"]
    assert checks["returned_ids"] == checks["assigned_events"] == 1 + 5 + 6
    assert checks["returned_ids_duplicated"] == 0
    assert checks["campaigns_assigned_twice"] == 0
    assert checks["wrong_owner"] == 0

    # Nothing is left behind: the scratch database the run created is gone, the server stopped.
    assert len(created) == 1 and not created & bench_databases()
    assert _server_children() == []


def test_bench_http_refuses_an_empty_burst(runner):
    result = runner.invoke(args=["bench", "--http", "--clients", "0"])
    assert result.exit_code == 2
    assert "clients must be at least 1" in result.output


def test_plan_sizes_the_pool_to_the_run():
    plan = HttpBenchPlan(sequential=7, clients=3, per_client=4, warmup=2, workers=2, threads=8)
    assert plan.total_requests == 2 + 7 + 12
    assert plan.server_label == "gunicorn -w 2 --threads 8"
    with pytest.raises(ValueError, match="warmup"):
        HttpBenchPlan(warmup=-1)


def test_percentile_is_nearest_rank():
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None
