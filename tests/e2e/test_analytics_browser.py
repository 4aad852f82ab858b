"""The analytics page in Chromium: signed in as an admin, reached from the dashboard's nav, it
draws its four charts with the vendored Chart.js from the figures the server computed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask

from portal.extensions import db
from portal.models import PoolEvent, utcnow
from portal.services.accounts.users import create_user
from tests.support.auth import DEFAULT_PASSWORD
from tests.support.browser import LiveServer, chromium, login, page, screenshot, start_live_server  # noqa: F401

pytestmark = pytest.mark.browser

ADMIN = "admin@example.com"


@pytest.fixture
def served(app: Flask) -> Iterator[LiveServer]:
    """An admin and a day of claims: 5 pool hits and 2 fallbacks in the hour that began about
    three hours ago (within one hour of the day, whenever the test runs)."""
    create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
    at = (utcnow() - timedelta(hours=3)).replace(minute=5, second=0, microsecond=0)
    for i in range(5):
        db.session.add(
            PoolEvent(
                kind="assigned",
                pool_type="master",
                duration_ms=4.0,
                detail={"pool_age_s": 120.0 * (i + 1)},
                created_at=at + timedelta(minutes=i),
            )
        )
    for i in range(2):
        db.session.add(PoolEvent(kind="fallback", created_at=at + timedelta(minutes=10 + i)))
    db.session.commit()
    server = start_live_server(app)
    server.claims_hour = at.hour  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_analytics_page_renders_its_charts(served, page, artifacts_dir) -> None:  # noqa: F811
    from playwright.sync_api import expect

    login(page, served.url, ADMIN, DEFAULT_PASSWORD)
    page.get_by_role("link", name="Analytics", exact=True).click()
    page.wait_for_url("**/admin/analytics")
    expect(page.locator("#analytics-charts")).to_have_attribute("data-rendered", "4")
    expect(page.locator("#analytics-note")).to_be_hidden()
    expect(page.get_by_test_id("card-hit-rate")).to_contain_text("71%")
    hour = served.claims_hour
    drawn = page.evaluate(
        """(hour) => {
          const c = window.poolAnalytics.charts;
          const sum = (a) => a.reduce((x, y) => x + y, 0);
          return {
            hits: c.byHour.data.datasets[0].data[hour],
            fallbacks: sum(c.byHour.data.datasets[1].data),
            weekdayHits: sum(c.byWeekday.data.datasets[0].data),
            inPool: sum(c.timeInPool.data.datasets[0].data),
            hours: c.recommended.data.labels.length,
            sized: [c.byHour, c.byWeekday, c.timeInPool, c.recommended].every((x) => x.width > 0),
          };
        }""",
        hour,
    )
    assert drawn == {
        "hits": 5,
        "fallbacks": 2,
        "weekdayHits": 5,
        "inPool": 5,
        "hours": 24,
        "sized": True,
    }
    page.get_by_test_id("period-selector").get_by_text("7 d").click()
    page.wait_for_url("**/admin/analytics?days=7")
    expect(page.locator("#analytics-charts")).to_have_attribute("data-rendered", "4")
    screenshot(page, artifacts_dir, "admin-analytics")
    assert page.js_errors == []
