"""Demand sizing in the portal: the dashboard shows the effective target next to the configured
one with its reason, and the demand sizing form stores its settings all or nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.models import PoolEvent, PoolSetting, utcnow
from tests.blueprints.admin.test_portal import actions_recorded, bound, dashboard_token, pool  # noqa: F401
from tests.support.auth import AuthActions

# The pool of test_admin_portal: a master template and a master pool of target 5.
pytestmark = pytest.mark.usefixtures("pool")

FORM = {
    "demand-enabled": "y",
    "demand-minimum": "3",
    "demand-maximum": "20",
    "demand-half_life": "10",
    "demand-service_level": "90",
    "demand-history_days": "14",
}


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    auth.create_user()
    assert auth.login().status_code == 302
    return client


def stored() -> dict[str, int]:
    db.session.expire_all()
    return dict(db.session.execute(sa.select(PoolSetting.key, PoolSetting.value)).all())


def test_dashboard_shows_the_effective_target_and_why(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert bound(page, "demand.master.value") == bound(page, "demand.master.configured") == "5"
    assert bound(page, "demand.master.reason").startswith("demand sizing off: configured target 5")


def test_the_form_switches_demand_sizing_on_and_the_target_follows(
    app: Flask, admin_client: FlaskClient
) -> None:
    now = utcnow()
    for i in range(60):  # a burst: 60 claims in the last two minutes, refills take 30 s
        db.session.add(
            PoolEvent(
                kind="assigned", pool_type="master", created_at=now - timedelta(seconds=2 * i)
            )
        )
    db.session.add(
        PoolEvent(kind="replenished", pool_type="master", created_at=now - timedelta(seconds=88))
    )
    db.session.commit()
    token = dashboard_token(admin_client)
    response = admin_client.post(
        "/admin/actions/demand-sizing",
        data={**FORM, "demand-csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] is True and "Demand sizing on" in body["message"]
    assert stored() == {
        "demand_sizing": 1,
        "demand_min": 3,
        "demand_max": 20,
        "demand_half_life_min": 10,
        "demand_service_level": 90,
        "demand_history_days": 14,
    }
    demand = body["pool"]["demand"]["master"]
    assert demand["demand_sizing"] is True
    assert 3 < demand["value"] <= 20 and demand["configured"] == 5
    assert "clamped to [3, 20]" in demand["reason"]
    assert actions_recorded()[-1]["action"] == "demand_sizing"
    page = admin_client.get("/admin/").get_data(as_text=True)
    checkbox = re.search(r'<input[^>]*id="demand-enabled"[^>]*>', page).group(0)
    assert "checked" in checkbox
    assert bound(page, "demand.master.value") == str(demand["value"])
    # The level chart's target line is the target refills work to.
    chart = admin_client.get("/admin/api/metrics").get_json()
    assert chart["pool_level"]["target"] == demand["value"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"demand-minimum": "30", "demand-maximum": "10"}, "must not be larger than demand_max"),
        ({"demand-maximum": "5000"}, "demand_max must be between 1 and 1000"),
        ({"demand-half_life": "soon"}, "Not a valid integer value"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(
    admin_client: FlaskClient, changes: dict[str, str], message: str
) -> None:
    token = dashboard_token(admin_client)
    response = admin_client.post(
        "/admin/actions/demand-sizing",
        data={**FORM, **changes, "demand-csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert message in response.get_json()["message"]
    assert stored() == {}


def test_the_form_needs_its_csrf_token(admin_client: FlaskClient) -> None:
    response = admin_client.post("/admin/actions/demand-sizing", data=FORM)
    assert response.status_code == 400
    assert stored() == {} and actions_recorded() == []


def test_resizing_while_demand_sizing_is_on_says_the_target_is_not_used(
    admin_client: FlaskClient,
) -> None:
    token = dashboard_token(admin_client)
    data = {**FORM, "demand-csrf_token": token}
    assert admin_client.post("/admin/actions/demand-sizing", data=data).status_code == 302
    response = admin_client.post(
        "/admin/actions/resize",
        data={"resize-csrf_token": token, "resize-pool_type": "master", "resize-target": "8"},
        headers={"Accept": "application/json"},
    )
    body = response.get_json()
    assert body["ok"] is True and "Demand sizing is on" in body["message"]
    assert stored()["master_target"] == 8
