"""Usage analytics: the SQL aggregates over known events (hours, weekdays, hit rate, time in
pool, storage saved by sharing, the recommendation) and the page and JSON behind the guard."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, ImageAttachment, ImageBlob, PoolEvent, User
from portal.services.monitoring.analytics import PeriodError, analytics, parse_period
from portal.services.pool.config import set_pool_settings
from tests.support.auth import AuthActions

# Wednesday 25 November 2026, 12:00 UTC.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(kind: str, at: datetime, pool_type: str | None = "master", age_s: float | None = None):
    detail = {"pool_age_s": age_s} if age_s is not None else None
    db.session.add(
        PoolEvent(
            kind=kind,
            pool_type=pool_type if kind == "assigned" else None,
            duration_ms=4.0,
            detail=detail,
            created_at=at,
        )
    )


@pytest.fixture
def history(app: Flask) -> Flask:
    """Known claims: Monday 23 Nov 09:xx three master hits and one fallback; Tuesday 24 Nov
    21:xx one user-pool hit and two fallbacks; one hit 40 days ago (outside 28 days)."""
    monday = datetime(2026, 11, 23, 9, 10, tzinfo=UTC)
    for minutes, age in ((0, 30), (5, 1200), (10, 4000)):
        event("assigned", monday + timedelta(minutes=minutes), age_s=age)
    event("fallback", monday + timedelta(minutes=20))
    tuesday = datetime(2026, 11, 24, 21, 40, tzinfo=UTC)
    event("assigned", tuesday, pool_type="user", age_s=90_000)
    event("fallback", tuesday + timedelta(minutes=1))
    event("fallback", tuesday + timedelta(minutes=2))
    event("assigned", NOW - timedelta(days=40), age_s=10)
    db.session.commit()
    return app


def test_claims_by_hour_and_weekday_are_grouped_in_utc(history: Flask) -> None:
    data = analytics(db.session, settings_of(history), 28, now=NOW)
    assert data["by_hour"]["pool_hits"][9] == 3 and data["by_hour"]["fallbacks"][9] == 1
    assert data["by_hour"]["pool_hits"][21] == 1 and data["by_hour"]["fallbacks"][21] == 2
    assert sum(data["by_hour"]["pool_hits"]) == 4  # the 40-day-old hit is outside the period
    assert data["weekdays"][0] == "Mon"
    assert data["by_weekday"] == {
        "pool_hits": [3, 1, 0, 0, 0, 0, 0],
        "fallbacks": [1, 2, 0, 0, 0, 0, 0],
        "master_demand": [4, 2, 0, 0, 0, 0, 0],  # the user-pool hit is not the master's
    }
    longer = analytics(db.session, settings_of(history), 90, now=NOW)
    assert sum(longer["by_hour"]["pool_hits"]) == 5


def test_hit_rate_counts_each_pool_against_fallbacks(history: Flask) -> None:
    rate = analytics(db.session, settings_of(history), 28, now=NOW)["hit_rate"]
    assert rate == {
        "total": 7,
        "master_pool": 3,
        "user_pool": 1,
        "fallbacks": 3,
        "hit_rate": round(4 / 7, 4),
    }


def test_time_in_pool_histogram_and_percentiles(history: Flask) -> None:
    tip = analytics(db.session, settings_of(history), 28, now=NOW)["time_in_pool"]
    assert dict(zip(tip["labels"], tip["counts"], strict=True)) == {
        "< 1 min": 1,
        "1-10 min": 0,
        "10-60 min": 1,
        "1-6 h": 1,
        "6-24 h": 0,
        "1-7 d": 1,
        "> 7 d": 0,
    }
    master = tip["by_pool"]["master"]
    assert master["count"] == 3 and master["p50_s"] == 1200.0 and master["max_s"] == 4000.0
    assert tip["by_pool"]["user"]["count"] == 1


def test_storage_saved_counts_every_shared_use_of_a_blob(app: Flask) -> None:
    def blob(size: int) -> ImageBlob:
        row = ImageBlob(
            key=uuid.uuid4().hex,
            filename="a.png",
            content_type="image/png",
            byte_size=size,
            checksum="x",
            service_name="local",
        )
        db.session.add(row)
        db.session.flush()
        return row

    shared, single = blob(1000), blob(50)
    for _ in range(3):  # the template's use and two campaigns sharing it
        db.session.add(ImageAttachment(record_type="Schtick", record_id=uuid.uuid4(), blob=shared))
    db.session.add(ImageAttachment(record_type="Weapon", record_id=uuid.uuid4(), blob=single))
    db.session.commit()
    storage = analytics(db.session, settings_of(app), now=NOW)["storage"]
    assert storage["blobs_stored"] == 2 and storage["bytes_stored"] == 1050
    assert storage["attachments"] == 4
    assert storage["blobs_not_duplicated"] == 2 and storage["bytes_not_duplicated"] == 2000


def test_the_full_template_shares_its_images_with_every_seeded_campaign(template_app) -> None:
    from portal.services.infra.queue import get_redis
    from portal.services.pool.replenish import replenish_pool

    set_pool_settings(db.session, settings_of(template_app), {"master_target": 2})
    db.session.commit()
    before = analytics(db.session, settings_of(template_app))["storage"]
    replenish_pool(db.session, get_redis(template_app), settings_of(template_app), "master")
    after = analytics(db.session, settings_of(template_app))["storage"]
    assert after["blobs_stored"] == before["blobs_stored"]  # no new file
    assert after["blobs_not_duplicated"] - before["blobs_not_duplicated"] == 2 * 789
    # Every stored file is the template's: each campaign re-uses all of them once.
    gained = after["bytes_not_duplicated"] - before["bytes_not_duplicated"]
    assert gained == 2 * before["bytes_stored"] > 0
    assert after["seeded_campaigns"] == before["seeded_campaigns"] + 2


def test_recommendation_follows_the_busy_hour(app: Flask) -> None:
    set_pool_settings(
        db.session,
        settings_of(app),
        {"demand_min": 1, "demand_max": 30, "demand_service_level": 95},
    )
    # 28 days with 120 claims in the 20:00 hour (2 a minute) and one at 04:00; refills 60 s.
    for day in range(1, 29):
        start = datetime(2026, 11, 25, 20, 0, tzinfo=UTC) - timedelta(days=day)
        for i in range(120):
            event("assigned", start + timedelta(seconds=30 * i))
        quiet = start - timedelta(hours=16)
        event("assigned", quiet)
        db.session.add(
            PoolEvent(
                kind="replenished", pool_type="master", created_at=quiet + timedelta(seconds=60)
            )
        )
    db.session.commit()
    rec = analytics(db.session, settings_of(app), 28, now=NOW)["recommendation"]
    by_hour = rec["by_hour"]
    assert by_hour["lead_time_s"] == pytest.approx(60, abs=1)
    # 2 a minute for 60 s: L = 2, Poisson 95% quantile 5, + 1.
    assert by_hour["targets"][20] == 6
    assert by_hour["targets"][4] == 1 and by_hour["targets"][12] == 1
    assert rec["now"]["recommended"] >= 1 and rec["demand_sizing"] is False


def test_period_parsing() -> None:
    assert parse_period(None) == 28 and parse_period("7") == 7
    for raw in ("5", "week", "-1"):
        with pytest.raises(PeriodError, match="7, 28, 90"):
            parse_period(raw)


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    auth.create_user()
    assert auth.login().status_code == 302
    return client


def test_the_page_and_json_are_for_admins_only(client: FlaskClient, auth: AuthActions) -> None:
    assert client.get("/admin/analytics").status_code == 302  # to the login page
    assert (
        client.get("/admin/api/analytics", headers={"Accept": "application/json"}).status_code
        == 401
    )
    auth.create_user(email="gm@example.com", admin=False)
    auth.login(email="gm@example.com")
    assert client.get("/admin/analytics").status_code == 403


def test_the_page_renders_the_figures_and_refuses_bad_periods(
    history: Flask, admin_client: FlaskClient
) -> None:
    page = admin_client.get("/admin/analytics")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for chart in ("chart-by-hour", "chart-by-weekday", "chart-time-in-pool", "chart-recommended"):
        assert f'id="{chart}"' in text
    assert 'id="analytics-data"' in text and "chart.umd.min.js" in text
    assert 'href="/admin/analytics"' in admin_client.get("/admin/").get_data(as_text=True)
    body = admin_client.get("/admin/api/analytics?days=90").get_json()
    assert body["days"] == 90 and len(body["by_hour"]["pool_hits"]) == 24
    bad = admin_client.get("/admin/api/analytics?days=3")
    assert bad.status_code == 400 and "7, 28, 90" in bad.get_json()["message"]
    assert admin_client.get("/admin/analytics?days=3").status_code == 400
    assert db.session.query(User).count() == 1 and db.session.query(Campaign).count() == 0
