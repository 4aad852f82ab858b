"""`flask --app app bench --http --ramp` on a tiny ramp: the seeding limit and the 1-2 client
ramp with one and two refill workers, on a scratch PostgreSQL database and the test Redis. The
JSON's shape, the text table, the database's checks (nothing handed out twice, each to its
requester) and nothing left behind are asserted; the figures are not (they belong to a run on
a quiet machine, docs/performance.md)."""

from __future__ import annotations

import json

import pytest
import redis
from rq import Worker

from portal.devtools.ramp import RampPlan
from tests.devtools.test_bench import bench_databases, scratch_databases_created
from tests.devtools.test_bench_http import _server_children
from tests.support.processes import require_redis

TINY = [
    "bench", "--http", "--ramp", "--ramp-workers", "1,2", "--ramp-clients", "2",
    "--ramp-per-client", "2", "--pool-target", "3", "--batch-size", "2",
    "--limit-seconds", "1", "--threads", "4",
]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_the_ramp_prints_the_seeding_limit_and_a_row_per_worker_count_and_step(
    app, runner, redis_url
):
    url = require_redis(redis_url)
    redis.Redis.from_url(url).flushdb()
    with scratch_databases_created() as created:
        result = runner.invoke(args=[*TINY, "--redis-url", url])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # stdout is the JSON and nothing else

    assert figures["seeding_limit_rps"] > 0
    limit = figures["seeding_limit"]
    assert limit["batch"] == 2 and len(limit["runs"]) == 2
    assert limit["campaigns_per_s"] == max(r["campaigns_per_s"] for r in limit["runs"])
    assert [(r["workers"], r["clients"]) for r in figures["ramp"]] == [(1, 2), (2, 2)]
    for row in figures["ramp"]:
        assert row["requests"] == 2 * row["clients"] and row["errors"] == 0
        assert row["throughput_rps"] > 0 and 0 <= row["pool_hit_rate"] <= 1
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    for extra in figures["workers"].values():
        assert extra["checks"]["assigned_twice"] == extra["checks"]["wrong_owner"] == 0
        assert extra["checks"]["returned"] == extra["checks"]["distinct"] == 4
    assert set(figures["summary"]) == {"w1", "w2"}
    assert "seeding limit:" in result.stderr and "W  clients" in result.stderr
    # Nothing left behind: no database, no server, no worker registered on the Redis.
    assert len(created) == 5 and not bench_databases() & created  # prepared, 2 limits, 2 Ws
    assert _server_children() == []
    assert Worker.all(connection=redis.Redis.from_url(url)) == []


def test_the_ramp_needs_a_redis_and_sane_numbers(app, runner):
    result = runner.invoke(args=["bench", "--http", "--ramp"])
    assert result.exit_code == 2 and "--redis-url" in result.output
    result = runner.invoke(args=[*TINY, "--redis-url", "redis://x", "--ramp-workers", "1,zero"])
    assert result.exit_code == 2 and "whole numbers" in result.output
    with pytest.raises(ValueError, match="per_client"):
        RampPlan(redis_url="redis://x", per_client=0)
    plan = RampPlan(
        redis_url="redis://x", workers=(1,), clients=(1, 2), per_client=3, seeders=(2, 4)
    )
    assert plan.units == 1 + 2 + 1 + 9
