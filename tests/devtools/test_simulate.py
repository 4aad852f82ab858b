"""`pool simulate`: options are checked before anything is written, arrivals are reproducible,
and a short replay on a scratch database (SQLite, or the test PostgreSQL server) claims and
refills for real, with the demand target following a burst."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.config import normalize_database_url
from portal.devtools.simulate import Burst, SimulationError, SimulationPlan
from portal.extensions import db
from portal.models import Campaign, PoolEvent


def test_bursts_parse_and_explain_mistakes() -> None:
    assert Burst.parse("90:40") == Burst(90.0, 40, 2.0)
    assert Burst.parse("1.5:3:0.5") == Burst(1.5, 3, 0.5)
    for raw, message in (
        ("90", "write AT:SIZE"),
        ("a:3", "SIZE a whole number"),
        ("5:0", "SIZE >= 1"),
        ("5:2:1:1", "write AT:SIZE"),
    ):
        with pytest.raises(SimulationError, match=message):
            Burst.parse(raw)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_per_min": -1}, "--rate must be between"),
        ({"duration_min": 0}, "--duration must be between"),
        ({"lead_time_s": 0}, "--lead-time must be"),
        ({"demand_min": 9, "demand_max": 3}, "--demand-min must not be larger"),
        ({"service_level": 100}, "demand_service_level must be between 50 and 99"),
        ({"bursts": (Burst(50, 10, 20),), "duration_min": 60}, "ends after the simulation"),
        ({"rate_per_min": 600, "duration_min": 600}, "more than 20000"),
        ({"rate_per_min": 0}, "no claims to replay"),
    ],
)
def test_plans_are_validated(options: dict, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        SimulationPlan(**options)


def test_arrivals_are_reproducible_and_include_the_bursts() -> None:
    plan = SimulationPlan(rate_per_min=1, duration_min=120, bursts=(Burst(60, 30, 2),), seed=7)
    arrivals = plan.arrivals()
    assert arrivals == plan.arrivals() == sorted(arrivals)
    in_burst = [t for t in arrivals if 3600 <= t <= 3720]
    assert len(in_burst) >= 30
    assert 80 <= len(arrivals) - 30 <= 160  # about 120 at 1 a minute
    assert SimulationPlan(rate_per_min=1, duration_min=120, seed=8).arrivals() != arrivals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-2"], "--rate must be between"),
        (["--burst", "400:10"], "ends after the simulation"),
        (["--burst", "x"], "write AT:SIZE"),
        (["--demand-min", "10", "--demand-max", "2"], "--demand-min must not be larger"),
        (["--postgres", "mysql://x/y"], "must be a postgresql:// or sqlite:// URL"),
        (["--postgres", "sqlite:///x.db"], "--postgres needs a postgresql:// URL"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(app: Flask, args, message) -> None:
    result = app.test_cli_runner().invoke(args=["pool", "simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolEvent)) == 0


def test_a_short_bursty_replay_on_a_scratch_database(app: Flask) -> None:
    args = ["pool", "simulate", "--rate", "0.5", "--burst", "10:20:3", "--duration", "30"]
    args += ["--lead-time", "90", "--seed", "3"]
    server = os.environ.get("TEST_DATABASE_URL", "").strip()
    if server:
        args += ["--postgres", normalize_database_url(server, "TEST_DATABASE_URL")]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["database"] == ("postgresql" if server else "sqlite")
    fixed, demand = figures["fixed"], figures["demand"]
    for variant in (fixed, demand):
        assert variant["claims"] == figures["arrivals"] >= 20
        assert variant["pool_hits"] + variant["fallbacks"] == variant["claims"]
        assert variant["campaigns_built"] >= variant["pool_hits"]
        assert variant["blobs_created"] == 0  # shared images: no new file per campaign
        assert variant["rows_per_campaign"] > 1000 and variant["bytes_per_campaign"] > 0
        assert 0 < variant["avg_pool_size"] <= variant["max_pool_size"]
    assert fixed["max_target"] == 5 and fixed["avg_target"] == 5
    # The burst raises the demand target above its floor, which it starts at.
    targets = [target for _, target in figures["demand_targets"]]
    assert targets[0] == 2 and max(targets) > 2 and demand["max_target"] == max(targets)
    assert "hit rate" in result.output and "demand-aware" in result.output
    # The configured database was not touched.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0
