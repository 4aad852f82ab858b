"""Load: a ramp of concurrent gamemasters creating campaigns through gunicorn while real RQ
workers refill the pool, on PostgreSQL and Redis (issue 8).

Steps of 1 -> 4 -> 8 -> 16 clients, each client its own gamemaster with its own token and
keep-alive connection, `LOAD_SCALE` creates per client per step (1 in CI), one step straight
after the other (the pool drains under the larger steps and creates fall back to seeding; that
is part of what is measured). Per step: throughput, p50/p95/p99 of every create, errors, pool
hit rate, written to test-artifacts/load.json with a summary line on stdout. What is asserted
is behaviour, not speed: every create answered 201, every returned campaign verifies against the
template and belongs to its requester only, none was handed out twice, and the pool is back at
its target once the load stops, with /health ok.

    LOAD_SCALE=10 TEST_DATABASE_URL=... TEST_REDIS_URL=... pytest -s tests/e2e/test_load.py

runs the same ramp ten times longer with a pool of 50 (docs/operations.md, "Load and faults").
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from portal.devtools.load import run_burst
from portal.models import utcnow
from tests.support.processes import require_redis, running_stack, step_figures

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

STEPS = (1, 4, 8, 16)


def load_scale() -> int:
    raw = os.environ.get("LOAD_SCALE", "").strip() or "1"
    try:
        scale = int(raw)
    except ValueError:
        raise pytest.UsageError(f"LOAD_SCALE must be a whole number, got {raw!r}") from None
    if scale < 1:
        raise pytest.UsageError(f"LOAD_SCALE must be at least 1, got {scale}")
    return scale


def test_a_ramp_of_gamemasters_while_workers_refill(
    databases, template_golden, redis_url, tmp_path, artifacts_dir
):
    scale = load_scale()
    per_client = scale
    target = min(50, 10 * scale)
    with running_stack(
        databases, template_golden, require_redis(redis_url), tmp_path,
        users=max(STEPS), master_target=target,
    ) as stack:  # fmt: skip
        assert stack.ready() == target
        phases, ready_before = [], []
        for clients in STEPS:
            ready_before.append(stack.ready())
            phase = run_burst(stack.port, stack.tokens[:clients], per_client, f"load x{clients}")
            phases.append((clients, phase))
        replies = [r for _, phase in phases for r in phase.replies]
        # The refills the creates queued bring the pool back without anyone asking again.
        load_ended = time.monotonic()
        stack.wait_for_pool(target, timeout_s=60 * scale)
        recovered_s = round(time.monotonic() - load_ended, 1)
        status, health = stack.health()
        check = stack.check(replies)
        statuses = stack.pool_statuses()

    steps = [
        {**step_figures(phase, clients), "pool_ready_at_start": ready}
        for (clients, phase), ready in zip(phases, ready_before, strict=True)
    ]
    report = {
        "load": {
            "scale": scale,
            "per_client": per_client,
            "master_target": target,
            "workers": 1,
            "server": "gunicorn -w 1 --threads 16",
            "steps": steps,
            "checks": {
                k: (len(v) if isinstance(v, list) else v)
                for k, v in dataclasses.asdict(check).items()
            },
            "pool_after": statuses,
            "seconds_until_pool_refilled_after_load": recovered_s,
            "measured_at": utcnow().isoformat(timespec="seconds"),
        }
    }
    (artifacts_dir / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        "\nload: "
        + " | ".join(
            f"{s['clients']} clients: {s['throughput_rps']}/s p50 {s['p50_ms']} "
            f"p95 {s['p95_ms']} p99 {s['p99_ms']} ms, hit {s['pool_hit_rate']}, "
            f"errors {s['errors_5xx'] + s['errors_other']}"
            for s in steps
        )
    )

    for step in steps:
        assert step["errors_5xx"] == 0 and step["errors_other"] == 0, step
        assert step["created"] == step["requests"] == step["clients"] * per_client
    assert check.returned == check.distinct == len(replies)
    assert check.assigned_twice == []
    assert check.wrong_owner == []
    assert check.not_verifying == []
    assert check.problems == []  # nor misnamed, nor a pool flag contradicting its status
    # Never a campaign left half-built: every build either became ready or was assigned.
    assert statuses.get("building", 0) == 0 and statuses.get("failed", 0) == 0
    assert statuses["ready"] == target  # back to its target, and never above it
    assert status == 200 and health["status"] == "ok", health
