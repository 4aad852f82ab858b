"""The pool kill switch and the refill pause, end to end through the portal and the API
(docs/operations.md, "Rollback: switch the pool off").

With assignment off every create is `seeded` and nothing is claimed; back on, creates come from
the pool again. The switch is the portal's quick action (with its confirmation box) or
POOL_ASSIGNMENT=off in the environment, which no admin can override; every change is a `switch`
event, shown on the dashboard, in the pool payload and in /health.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, PoolEvent
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import app_on
from tests.support.auth import AuthActions, csrf_token_from

TARGET = 2


def ready() -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(sa.func.count()).where(
            Campaign.is_pool.is_(True), Campaign.pool_status == "ready"
        )
    )


def events(kind: str) -> list[PoolEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == kind).order_by(PoolEvent.id)
        )
    )


def fill(app: Flask) -> None:
    set_pool_setting(db.session, "master_target", TARGET)
    set_pool_setting(db.session, "user_target", 0)
    db.session.commit()
    replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert ready() == TARGET


class Clients:
    """An admin's portal session and a gamemaster's API client on one app."""

    def __init__(self, app: Flask) -> None:
        self.admin = app.test_client()
        auth = AuthActions(self.admin)
        auth.create_user()
        assert auth.login().status_code == 302
        self.api = app.test_client()
        gm = AuthActions(self.api).create_user("gm@example.com", admin=False, gamemaster=True)
        self.api.environ_base["HTTP_AUTHORIZATION"] = (
            f"Bearer {AuthActions(self.api).token_for(gm)}"
        )
        self.created = 0

    def create(self) -> str:
        self.created += 1
        response = self.api.post(
            "/api/v2/campaigns", json={"campaign": {"name": f"Campaign {self.created}"}}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["source"]

    def switch(self, assignment: str, refills: str = "on", *, confirm: bool = True):
        token = csrf_token_from(self.admin.get("/admin/").get_data(as_text=True))
        data = {
            "switches-csrf_token": token,
            "switches-assignment": assignment,
            "switches-refills": refills,
            "switches-reason": "rollback drill",
        }
        if confirm:
            data["switches-confirm"] = "y"
        return self.admin.post(
            "/admin/actions/switches", data=data, headers={"Accept": "application/json"}
        )

    def health(self) -> dict:
        return self.admin.get("/health").get_json()


@pytest.fixture
def clients(template_app: Flask) -> Clients:
    fill(template_app)
    return Clients(template_app)


def test_assignment_off_seeds_every_create_and_claims_nothing_until_back_on(
    template_app: Flask, clients: Clients
) -> None:
    # Without the confirmation box nothing changes.
    refused = clients.switch("off", confirm=False)
    assert refused.status_code == 400 and events("switch") == []
    assert clients.create() == "master_pool"
    replenish_pool(db.session, get_redis(), settings_of(template_app), "master")

    response = clients.switch("off")
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["assignment"], body["refills"], body["changed"]) == (False, True, ["assignment"])
    assert body["pool"]["switches"]["assignment"]["enabled"] is False
    switched = events("switch")
    assert [(e.detail["switch"], e.detail["enabled"]) for e in switched] == [("assignment", False)]
    assert switched[0].detail["actor"] == "admin@example.com"
    assert switched[0].detail["reason"] == "rollback drill"

    claims_before = len(events("assigned"))
    sources = [clients.create() for _ in range(3)]
    assert sources == ["seeded"] * 3
    assert len(events("assigned")) == claims_before  # nothing claimed while off
    assert ready() == TARGET  # the pool waits, full, for assignment to come back
    fallbacks = events("fallback")[-3:]
    assert {e.detail["reason"] for e in fallbacks} == {"assignment_off"}
    # Shown on the dashboard and in /health (off on purpose: not a fault).
    page = clients.admin.get("/admin/").get_data(as_text=True)
    assert 'data-testid="switch-assignment">OFF<' in page
    health = clients.health()
    assert health["checks"]["pool"]["assignment"] == "off"
    assert health["checks"]["pool"]["refills"] == "running"

    assert clients.switch("on").status_code == 200
    assert clients.create() == "master_pool"
    assert len(events("assigned")) == claims_before + 1
    assert [e.detail["enabled"] for e in events("switch")] == [False, True]


def test_refills_pause_separately_and_resume(template_app: Flask, clients: Clients) -> None:
    assert clients.switch("on", "off").get_json()["changed"] == ["refills"]
    assert clients.create() == "master_pool"  # assignment still on: the pool serves ...
    report = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert (report.skipped, report.built) == ("paused", [])  # ... but is not refilled
    assert ready() == TARGET - 1
    assert clients.health()["checks"]["pool"]["refills"] == "paused"
    assert 'data-testid="switch-refills">paused<' in clients.admin.get("/admin/").get_data(
        as_text=True
    )

    body = clients.switch("on", "on").get_json()
    assert body["changed"] == ["refills"] and body["job_id"] == "replenish-all-all"
    assert [(e.detail["switch"], e.detail["enabled"]) for e in events("switch")] == [
        ("refills", False),
        ("refills", True),
    ]


@pytest.fixture
def env_off_app(databases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    yield from app_on(databases, template_golden, redis_url, POOL_ASSIGNMENT="off")


def test_pool_assignment_off_in_the_environment_wins_over_the_portal(env_off_app: Flask) -> None:
    fill(env_off_app)
    clients = Clients(env_off_app)
    assert clients.create() == "seeded"
    body = clients.switch("on").get_json()  # the runtime switch is on already: no change
    assert body["assignment"] is False and "POOL_ASSIGNMENT=off" in body["message"]
    assert clients.create() == "seeded"
    assert events("assigned") == [] and ready() == TARGET
    assert clients.health()["checks"]["pool"]["assignment"] == "off"
    page = clients.admin.get("/admin/").get_data(as_text=True)
    assert "off by POOL_ASSIGNMENT=off" in page
