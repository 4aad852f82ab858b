"""Demand-aware sizing: the model's parts on events inserted at known times (an injected `now`,
never a sleep), the effective target rising under a burst and falling back within its bounds,
the switch, the settings' validation, and the refill and payload that use it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal import settings_of
from portal.extensions import db
from portal.models import PoolEvent, PoolSetting
from portal.services.pool.config import PoolConfigError, load_pool_config, set_pool_settings
from portal.services.pool.demand import (
    DEFAULT_LEAD_TIME_S,
    effective_target,
    ewma_rates,
    lead_time,
    poisson_quantile,
    profile_rate,
)

NOW = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)


def claims(at: datetime, count: int, spread: timedelta = timedelta(0), kind: str = "assigned"):
    """`count` master-pool claims evenly spread over `spread` starting at `at`."""
    step = spread / count if count else spread
    for i in range(count):
        db.session.add(
            PoolEvent(
                kind=kind,
                pool_type="master" if kind == "assigned" else None,
                duration_ms=5.0,
                created_at=at + step * i,
            )
        )
    db.session.commit()


def build(at: datetime) -> None:
    db.session.add(PoolEvent(kind="replenished", pool_type="master", duration_ms=50, created_at=at))
    db.session.commit()


def configure(app, **values: int) -> None:
    set_pool_settings(db.session, settings_of(app), values)
    db.session.commit()


def test_poisson_quantile_matches_the_distribution() -> None:
    # P(X<=4 | mean 2) = 0.947 < 0.95 <= P(X<=5) = 0.983
    assert poisson_quantile(2.0, 0.95) == 5
    assert poisson_quantile(0.0, 0.95) == 0
    assert poisson_quantile(0.05, 0.95) == 0  # P(X=0) = 0.951
    assert poisson_quantile(10.0, 0.5) == 10
    big = poisson_quantile(10_000.0, 0.95)  # the normal approximation: mean + 1.645 sd
    assert 10_160 <= big <= 10_170


def test_a_steady_rate_is_estimated_by_both_averages(app) -> None:
    # 2 claims a minute for the last 3 hours (12 half-lives of 15 min).
    claims(NOW - timedelta(hours=3), 360, timedelta(hours=3))
    recent, burst = ewma_rates(db.session, NOW, (15.0, 3.0))
    assert recent == pytest.approx(2.0, rel=0.06)
    assert burst == pytest.approx(2.0, rel=0.1)


def test_a_long_half_life_reads_coarser_buckets_and_still_estimates_the_rate(app) -> None:
    claims(NOW - timedelta(hours=9), 1080, timedelta(hours=9))  # 2 a minute, 9 half-lives
    (hourly,) = ewma_rates(db.session, NOW, (60.0,))  # 6-minute buckets
    assert hourly == pytest.approx(2.0, rel=0.06)


def test_events_after_now_do_not_count(app) -> None:
    claims(NOW + timedelta(minutes=1), 50)
    assert ewma_rates(db.session, NOW, (15.0,)) == (0.0,)


def test_lead_time_is_the_median_wait_from_claim_to_next_build(app) -> None:
    assert lead_time(db.session, NOW, NOW - timedelta(days=1)) == (DEFAULT_LEAD_TIME_S, 0)
    for minutes_ago, wait_s in ((50, 30), (40, 40), (30, 45)):
        claims(NOW - timedelta(minutes=minutes_ago), 1)
        build(NOW - timedelta(minutes=minutes_ago) + timedelta(seconds=wait_s))
    claims(NOW - timedelta(seconds=5), 1)  # no build yet: says nothing about the lead time
    seconds, samples = lead_time(db.session, NOW, NOW - timedelta(days=1))
    assert (seconds, samples) == (40.0, 3)


def test_hour_of_day_profile_needs_a_day_and_averages_the_same_hour(app) -> None:
    claims(NOW - timedelta(hours=3), 10)
    assert profile_rate(db.session, NOW, 28) is None  # less than a day of history
    # 60 claims in the 18:00 hour on each of the three previous days, 5 at other hours.
    for days in (1, 2, 3):
        claims(NOW.replace(minute=0) - timedelta(days=days), 60, timedelta(minutes=59))
        claims(NOW - timedelta(days=days, hours=6), 5)
    rate = profile_rate(db.session, NOW, 28)
    assert rate == pytest.approx(180 / (3 * 60), rel=0.01)  # one a minute
    assert profile_rate(db.session, NOW, 0) is None


def test_effective_target_rises_under_a_burst_and_falls_back_within_bounds(app) -> None:
    configure(app, demand_sizing=1, demand_min=2, demand_max=10, demand_half_life_min=15)
    # Quiet: a claim every 10 minutes for two hours; refills take 60 s.
    for i in range(12):
        at = NOW - timedelta(hours=2) + timedelta(minutes=10 * i)
        claims(at, 1)
        build(at + timedelta(seconds=60))
    settings = settings_of(app)
    quiet = effective_target(db.session, settings, now=NOW)
    assert quiet.demand_sizing and quiet.value == 2  # the floor
    assert quiet.estimate.lead_time_s == 60.0

    # A burst: 40 claims in two minutes.
    claims(NOW + timedelta(seconds=10), 40, timedelta(minutes=2))
    during = effective_target(db.session, settings, now=NOW + timedelta(minutes=2, seconds=30))
    assert during.value > quiet.value
    assert during.estimate.rate_burst > during.estimate.rate_recent
    assert during.value == 10 and during.estimate.unclamped > 10  # the ceiling holds

    # Demand drops back to nothing: the target falls back to the floor within hours.
    later = [
        effective_target(db.session, settings, now=NOW + timedelta(minutes=m)).value
        for m in (10, 30, 60, 120, 240)
    ]
    assert later == sorted(later, reverse=True)
    assert later[-1] == 2
    assert all(2 <= value <= 10 for value in later)


def test_the_explanation_shows_the_arithmetic(app) -> None:
    configure(app, demand_sizing=1, demand_min=1, demand_max=50, demand_service_level=95)
    claims(NOW - timedelta(hours=4), 480, timedelta(hours=4))  # 2 a minute
    build(NOW - timedelta(hours=5))
    target = effective_target(db.session, settings_of(app), now=NOW)
    est = target.estimate
    assert est.lead_time_s == DEFAULT_LEAD_TIME_S  # no claim was followed by a build
    assert est.expected == pytest.approx(est.rate_per_min * 60 / 60, rel=1e-3)
    assert est.base == math.ceil(est.expected)
    assert est.unclamped == poisson_quantile(est.expected, 0.95) + 1 == est.base + est.margin
    assert target.value == est.recommended == est.unclamped
    assert f"= {est.unclamped} (95% of claims served), clamped to [1, 50]" in target.reason
    assert "lead time 60 s" in target.reason


def test_switched_off_the_configured_target_applies(app) -> None:
    configure(app, demand_max=40)
    db.session.add(PoolSetting(key="master_target", value=7))
    db.session.commit()
    claims(NOW - timedelta(minutes=3), 60, timedelta(minutes=3))
    target = effective_target(db.session, settings_of(app), now=NOW)
    assert (target.value, target.configured, target.demand_sizing) == (7, 7, False)
    assert target.estimate.recommended > 7
    assert target.reason.startswith("demand sizing off: configured target 7")
    assert f"would set {target.estimate.recommended}" in target.reason
    user = effective_target(db.session, settings_of(app), "user", now=NOW)
    assert user.value == load_pool_config(db.session, settings_of(app)).user_target


def test_max_size_caps_the_demand_target(app) -> None:
    configure(app, demand_sizing=1, demand_min=20, demand_max=100, max_size=10)
    target = effective_target(db.session, settings_of(app), now=NOW)
    assert target.value == 10 and "capped by max_size 10" in target.reason


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"demand_min": 30, "demand_max": 10}, "must not be larger than demand_max"),
        ({"demand_sizing": 2}, "demand_sizing must be between 0 and 1"),
        ({"demand_sizing": 1, "demand_service_level": "high"}, "must be a whole number"),
        ({"demand_half_life_min": 0}, "between 1 and 1440"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(app, values, message) -> None:
    with pytest.raises(PoolConfigError, match=message):
        set_pool_settings(db.session, settings_of(app), values)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolSetting)) == 0


def test_the_pool_payload_carries_the_effective_target_under_a_new_key(app) -> None:
    from portal.services.infra.queue import get_redis
    from portal.services.monitoring.payload import admin_pool_payload

    configure(app, demand_sizing=1, demand_min=3)
    payload = admin_pool_payload(db.session, settings_of(app), get_redis(app))
    demand = payload["demand"]["master"]
    assert demand["demand_sizing"] is True and demand["value"] == 3
    assert payload["pools"]["master"]["target"] == demand["configured"]
    assert "clamped to [3," in demand["reason"]


def test_refills_build_to_the_effective_target(template_app) -> None:
    from portal.models import utcnow
    from portal.services.infra.queue import get_redis
    from portal.services.pool.replenish import replenish_pool

    settings = settings_of(template_app)
    configure(template_app, master_target=1, demand_sizing=1, demand_min=1, demand_max=3)
    claims(utcnow() - timedelta(minutes=2), 30, timedelta(minutes=2))  # a burst just now
    report = replenish_pool(db.session, get_redis(template_app), settings, "master")
    assert (report.target, len(report.built)) == (3, 3)
    configure(template_app, demand_sizing=0)
    report = replenish_pool(db.session, get_redis(template_app), settings, "master")
    assert (report.target, len(report.built)) == (1, 0)
