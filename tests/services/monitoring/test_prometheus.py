"""The figures behind `/metrics` that need no HTTP: the pool_events totals agree across
instances and as time passes; an unreadable database or Redis is reported, not raised."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import PoolEvent, utcnow
from portal.services.monitoring.prometheus import EventTotals, ScrapeCollector, render_metrics
from tests.support.metrics import samples_of, value


def add_event(session: Session, kind: str, age: timedelta, **fields: object) -> None:
    session.add(PoolEvent(kind=kind, created_at=utcnow() - age, campaign_id=uuid.uuid4(), **fields))


def test_event_totals_agree_across_instances_and_as_time_passes(app: Flask) -> None:
    """Totals kept by one process over hours equal a fresh read (another instance, a restart)."""
    session = db.session
    old, recent = timedelta(hours=3), timedelta(minutes=5)
    for age in (old, recent):
        add_event(
            session,
            "replenished",
            age,
            pool_type="master",
            duration_ms=40.0,
            detail={"method": "batch"},
        )
        add_event(session, "replenish_failed", age, pool_type="master", detail={"error": "x"})
        add_event(session, "cleaned", age, pool_type="master", detail={"reason": "retired"})
    add_event(
        session,
        "replenish_failed",
        old,
        pool_type="user",
        detail={"error": "reaped", "reaped": True},
    )
    delivery = {"email": "sent", "slack": "failed"}
    add_event(
        session,
        "alert",
        old,
        pool_type="master",
        detail={"incident": "pool_low:master", "state": "open", "delivery": delivery},
    )
    add_event(
        session,
        "alert",
        recent,
        detail={"incident": "workers_missing", "state": "resolved", "delivery": {}},
    )
    session.commit()

    kept = EventTotals()
    first = kept.read(session)
    add_event(
        session,
        "replenished",
        timedelta(0),
        pool_type="master",
        duration_ms=2000.0,
        detail={"method": "batch"},
    )
    session.commit()
    assert kept.read(session) == EventTotals().read(session)  # the new row is in both
    later = utcnow() + timedelta(hours=2)  # every row has settled by then
    assert kept.read(session, now=later) == EventTotals().read(session, now=later)
    totals = EventTotals().read(session)
    assert totals != first

    counters = totals.counters
    assert counters[("campaign_pool_refills_built", ("master",))] == 3
    assert counters[("campaign_pool_refills_failed", ("master", "error"))] == 2
    assert counters[("campaign_pool_refills_failed", ("user", "reaped"))] == 1
    assert counters[("campaign_pool_cleanups", ("master", "retired"))] == 2
    assert counters[("campaign_pool_alerts", ("pool_low", "open"))] == 1
    assert counters[("campaign_pool_alerts", ("workers_missing", "resolved"))] == 1
    assert counters[("campaign_pool_alert_notifications", ("email", "sent"))] == 1
    assert counters[("campaign_pool_alert_notifications", ("slack", "failed"))] == 1
    seeding = totals.histograms[("campaign_pool_seeding_duration_seconds", ("master", "batch"))]
    assert seeding.count == 3 and seeding.total == pytest.approx(2.08)
    assert seeding.buckets[2] == 2  # le=0.05: the two 40 ms builds, not the 2 s one


def test_an_unreadable_database_or_redis_is_reported_not_raised(app: Flask) -> None:
    class DeadRedis:
        def __getattr__(self, name: str) -> object:
            raise ConnectionError("redis is gone")

    broken = Session(sa.create_engine("sqlite:////nonexistent-dir/metrics.sqlite3"))
    collector = ScrapeCollector(broken, app.config["SETTINGS"], DeadRedis(), EventTotals())  # type: ignore[arg-type]
    samples = samples_of(render_metrics(collector).decode())
    assert value(samples, "campaign_pool_database_up") == 0
    assert value(samples, "campaign_pool_redis_up") == 0
    assert not any(name == "campaign_pool_ready" for name, _ in samples)
    assert any(name == "campaign_pool_creates_total" for name, _ in samples)
