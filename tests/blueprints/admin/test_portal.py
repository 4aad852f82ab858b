"""The admin portal through the Flask test client: the guard (pages, JSON, rq-dashboard,
Socket.IO), the dashboard's numbers, escaping of everything users type, the quick-action forms
with and without CSRF, and the JSON endpoints behind the charts.

Pool rows are inserted directly (no seeding): these tests are about what the portal shows and
does with the pool, not about building it.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db, socketio
from portal.models import Campaign, PoolEvent, PoolSetting, User, utcnow
from portal.services.infra.queue import get_redis
from portal.services.monitoring.charts import metrics
from tests.conftest import app_on
from tests.support.auth import AuthActions, csrf_token_from

XSS_NAME = '<script>alert("name")</script>'
XSS_DESCRIPTION = '<img src=x onerror="alert(1)">Evil & co'


# -- helpers -----------------------------------------------------------------------------------


def owner() -> User:
    user = User(id=uuid.uuid4(), email=f"owner-{uuid.uuid4().hex[:6]}@example.com", name="Owner")
    db.session.add(user)
    db.session.flush()
    return user


def master_template(user: User, version: int = 2) -> Campaign:
    campaign = Campaign(
        user_id=user.id, name="Master Template", is_master_template=True, template_version=version
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def pool_campaign(
    user: User,
    status: str = "ready",
    *,
    version: int = 2,
    pool_type: str = "master",
    name: str | None = None,
    description: str | None = None,
    age: timedelta = timedelta(minutes=30),
) -> Campaign:
    now = utcnow()
    campaign = Campaign(
        user_id=user.id,
        name=name or f"Pool campaign {uuid.uuid4().hex[:10]}",
        description=description,
        is_pool=status != "assigned",
        pool_type=pool_type,
        pool_status=status,
        pool_created_at=now - age,
        template_version=version,
        seeding_method="batch",
        seeding_duration_ms=42.0,
        seeded_at=now - age,
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


@pytest.fixture
def pool(app: Flask) -> dict[str, object]:
    """A master template at version 2, a master pool with 3 ready, 1 building, 1 failed and
    1 stale (version 1) campaigns, and two gamemasters of which one has a ready user pool."""
    user = owner()
    master_template(user)
    for _ in range(3):
        pool_campaign(user)
    pool_campaign(user, "building")
    pool_campaign(user, "failed")
    pool_campaign(user, version=1)
    gm1 = User(id=uuid.uuid4(), email="gm1@example.com", name="GM one", gamemaster=True)
    gm2 = User(id=uuid.uuid4(), email="gm2@example.com", name="GM two", gamemaster=True)
    db.session.add_all([gm1, gm2])
    db.session.flush()
    pool_campaign(gm1, pool_type="user")
    db.session.commit()
    return {"owner": user, "gm1": gm1, "gm2": gm2}


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    auth.create_user()
    assert auth.login().status_code == 302
    return client


def dashboard_token(client: FlaskClient) -> str:
    return csrf_token_from(client.get("/admin/").get_data(as_text=True))


def bound(page: str, path: str) -> str:
    """The text of the element bound to `path` on the dashboard."""
    match = re.search(rf'data-bind="{re.escape(path)}"[^>]*>([^<]*)<', page)
    assert match, f"no element bound to {path}"
    return match.group(1)


def actions_recorded() -> list[dict]:
    return [
        e.detail
        for e in db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == "action").order_by(PoolEvent.id)
        )
    ]


# -- the guard ---------------------------------------------------------------------------------

PAGES = ("/admin/", "/admin/campaigns", "/admin/rq/", "/admin/rq/0/view/workers")
JSON = ("/admin/api/pool", "/admin/api/metrics", "/admin/rq/0/data/queues.json")


def test_anonymous_visitors_are_sent_to_login_or_get_json_401(client: FlaskClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path
    for path in ("/admin/api/pool", "/admin/api/metrics"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.get_json()["status"] == 401


def test_non_admins_are_refused_everywhere(client: FlaskClient, auth: AuthActions) -> None:
    auth.create_user("gm@example.com", admin=False, gamemaster=True, name="Gamemaster")
    auth.login("gm@example.com")
    for path in PAGES + JSON:
        assert client.get(path).status_code == 403, path
    token = csrf_token_from(client.get("/admin/").get_data(as_text=True))  # the 403 page
    response = client.post(
        "/admin/actions/resize",
        data={"resize-csrf_token": token, "resize-pool_type": "master", "resize-target": "9"},
    )
    assert response.status_code == 403  # refused for the role: the form itself is valid
    assert db.session.get(PoolSetting, "master_target") is None


class TestSocket:
    """Socket.IO's test client cannot run with a message queue, so these tests use an app
    without REDIS_URL (on its own copy of the database, like every test)."""

    @pytest.fixture
    def app(self, databases, migrated_golden: str) -> Iterator[Flask]:
        yield from app_on(databases, migrated_golden, "")

    def test_refuses_anonymous_and_non_admin_connections(
        self, client: FlaskClient, auth: AuthActions
    ) -> None:
        anonymous = socketio.test_client(
            client.application, namespace="/admin", flask_test_client=client
        )
        assert not anonymous.is_connected("/admin")

        auth.create_user("gm@example.com", admin=False, gamemaster=True, name="Gamemaster")
        auth.login("gm@example.com")
        gm = socketio.test_client(client.application, namespace="/admin", flask_test_client=client)
        assert not gm.is_connected("/admin")

    def test_admin_gets_the_pool_payload_on_connect_and_after_actions(
        self, pool, admin_client: FlaskClient
    ) -> None:
        sio = socketio.test_client(
            admin_client.application, namespace="/admin", flask_test_client=admin_client
        )
        assert sio.is_connected("/admin")
        received = sio.get_received("/admin")
        assert [m["name"] for m in received] == ["pool_update"]
        first = received[0]["args"][0]
        assert first["pools"]["master"]["ready"] == 3
        assert "ops" in first  # the dashboard extras ride along

        token = dashboard_token(admin_client)
        admin_client.post(
            "/admin/actions/resize",
            data={"resize-csrf_token": token, "resize-pool_type": "master", "resize-target": "7"},
        )
        updates = [m["args"][0] for m in sio.get_received("/admin") if m["name"] == "pool_update"]
        assert updates and updates[-1]["pools"]["master"]["target"] == 7
        sio.disconnect(namespace="/admin")


# -- the dashboard -----------------------------------------------------------------------------


def test_dashboard_cards_show_the_pool(pool, admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert bound(page, "pools.master.ready") == "3"
    assert bound(page, "pools.master.target") == "5"
    assert bound(page, "pools.master.building") == "1"
    assert bound(page, "pools.master.failed") == "1"
    assert bound(page, "pools.master.stale") == "1"
    assert bound(page, "pools.user.gamemasters_with_ready_pool") == "1"
    assert bound(page, "pools.user.gamemasters") == "2"
    assert bound(page, "ops.building") == "1"
    assert bound(page, "ops.alerts_active") == "0"
    # Sidekiq style: every card links to the filtered list behind it.
    assert 'href="/admin/campaigns?pool_type=master&amp;status=ready"' in page
    assert 'href="/admin/campaigns?status=building"' in page
    # Served from our own static files, never a CDN.
    assert "/static/vendor/chart.umd.min.js" in page
    assert "/static/vendor/socket.io.min.js" in page
    assert "cdn" not in page.lower()


def test_dashboard_assignments_alerts_and_latency(pool, admin_client: FlaskClient) -> None:
    gm1 = pool["gm1"]
    now = utcnow()
    taken = pool_campaign(gm1, "assigned", name="Taken one", age=timedelta(hours=2))
    taken.pool_created_at = now - timedelta(hours=2)
    taken.activated_at = now - timedelta(minutes=1)
    for ms in (4.0, 6.0):
        db.session.add(
            PoolEvent(
                kind="assigned",
                campaign_id=taken.id,
                user_id=gm1.id,
                pool_type="master",
                duration_ms=ms,
                detail={"pool_age_s": 7140},
            )
        )
    db.session.add(PoolEvent(kind="fallback", user_id=gm1.id, duration_ms=80.0))
    db.session.add_all(
        [
            PoolEvent(kind="alert", detail={"incident": "pool-low", "state": "firing"}),
            PoolEvent(kind="alert", detail={"incident": "old", "state": "firing"}),
            PoolEvent(
                kind="alert",
                detail={"incident": "old", "state": "resolved"},
                created_at=now + timedelta(seconds=1),
            ),
        ]
    )
    db.session.commit()
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert bound(page, "assignments.total") == "3"
    assert bound(page, "assignments.hit_rate") == "67%"
    assert bound(page, "assignments.latency_ms.avg") == "5.0 ms"
    assert bound(page, "ops.alerts_active") == "1"
    assert "pool-low" in page and ">old<" not in page
    table = page[page.index('data-testid="assignments-table"') :]
    assert "Taken one" in table
    assert "1 h 59 min" in table  # time in pool: built 2 h ago, activated 1 min ago


def test_everything_users_type_is_escaped(pool, admin_client: FlaskClient) -> None:
    gm1 = pool["gm1"]
    evil = pool_campaign(gm1, "assigned", name=XSS_NAME, description=XSS_DESCRIPTION)
    evil.activated_at = utcnow()
    pool_campaign(pool["owner"], name=XSS_NAME + " ready", description=XSS_DESCRIPTION)
    db.session.add(PoolEvent(kind="assigned", campaign_id=evil.id, user_id=gm1.id, duration_ms=1))
    db.session.add(
        PoolEvent(
            kind="alert",
            detail={"incident": "<b>inc</b>", "state": "firing", "message": XSS_NAME},
        )
    )
    db.session.commit()
    pages = [
        admin_client.get("/admin/").get_data(as_text=True),
        admin_client.get("/admin/campaigns").get_data(as_text=True),
    ]
    for page in pages:
        assert XSS_NAME not in page
        assert "<img src=x" not in page
        assert html.escape(XSS_NAME, quote=False) in page or "&lt;script&gt;" in page
    # Descriptions are shown as plain-text excerpts: the markup is gone, the text escaped.
    assert "onerror" not in pages[1]
    assert "Evil &amp; co" in pages[1]
    assert "<b>inc</b>" not in pages[0] and "&lt;b&gt;inc&lt;/b&gt;" in pages[0]
    # The embedded JSON cannot close its <script> element either.
    data = pages[0][pages[0].index('id="pool-data"') :]
    data = data[: data.index("</script>")]
    assert "<" not in data.split(">", 1)[1]


def test_campaign_list_filters_and_pages(pool, admin_client: FlaskClient) -> None:
    user = pool["owner"]
    for _ in range(55):
        pool_campaign(user)
    db.session.commit()
    first = admin_client.get("/admin/campaigns?status=ready&pool_type=master").get_data(
        as_text=True
    )
    assert "58 campaigns" in first  # 3 + 55 ready at the current version; the stale one is not
    assert first.count('<span class="badge badge--ready">ready</span>') == 50
    assert "Page 1 of 2" in first
    second = admin_client.get("/admin/campaigns?status=ready&pool_type=master&page=2")
    assert second.get_data(as_text=True).count("badge--ready") == 8
    stale = admin_client.get("/admin/campaigns?status=stale").get_data(as_text=True)
    assert "1 campaign " in stale or "1 campaign<" in stale
    junk = admin_client.get("/admin/campaigns?status=<x>&page=-3")
    assert junk.status_code == 200


# -- quick actions -----------------------------------------------------------------------------


def test_forms_without_csrf_are_refused_and_change_nothing(pool, admin_client: FlaskClient) -> None:
    for path, prefix, data in (
        ("/admin/actions/resize", "resize", {"resize-pool_type": "master", "resize-target": "9"}),
        ("/admin/actions/retire-stale", "retire", {"retire-confirm": "y"}),
        ("/admin/actions/replenish", "replenish", {"replenish-scope": "master"}),
    ):
        response = admin_client.post(path, data=data)
        assert response.status_code == 400, path
        assert "security token" in response.get_data(as_text=True)
        bad = admin_client.post(path, data={**data, f"{prefix}-csrf_token": "forged"})
        assert bad.status_code == 400, path
        assert "security token" in bad.get_data(as_text=True), path
    assert db.session.get(PoolSetting, "master_target") is None
    assert (
        db.session.scalar(sa.select(sa.func.count()).where(Campaign.pool_status == "retired")) == 0
    )
    assert actions_recorded() == []


def test_resize_sets_the_target_records_the_admin_and_shows_the_result(
    pool, admin_client: FlaskClient
) -> None:
    token = dashboard_token(admin_client)
    response = admin_client.post(
        "/admin/actions/resize",
        data={"resize-csrf_token": token, "resize-pool_type": "master", "resize-target": "8"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Target of the master pool set to 8." in page
    assert bound(page, "pools.master.target") == "8"
    assert db.session.get(PoolSetting, "master_target").value == 8
    [recorded] = actions_recorded()
    assert recorded["admin"] == "admin@example.com"
    assert recorded["action"] == "resize" and recorded["ok"] is True
    assert recorded["result"]["target"] == 8


def test_resize_out_of_range_is_refused_with_the_reason(pool, admin_client: FlaskClient) -> None:
    token = dashboard_token(admin_client)
    response = admin_client.post(
        "/admin/actions/resize",
        data={"resize-csrf_token": token, "resize-pool_type": "user", "resize-target": "9"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["ok"] is False and "between 0 and 5" in body["message"]
    assert db.session.get(PoolSetting, "user_target") is None
    assert actions_recorded()[-1]["ok"] is False

    response = admin_client.post(
        "/admin/actions/resize",
        data={"resize-csrf_token": token, "resize-pool_type": "master", "resize-target": "x"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["errors"]["target"]


def test_retire_stale_needs_confirmation_then_retires_old_versions_only(
    pool, admin_client: FlaskClient
) -> None:
    token = dashboard_token(admin_client)
    refused = admin_client.post(
        "/admin/actions/retire-stale", data={"retire-csrf_token": token}, follow_redirects=True
    )
    assert "Tick the box to confirm." in refused.get_data(as_text=True)
    assert actions_recorded() == []

    response = admin_client.post(
        "/admin/actions/retire-stale",
        data={"retire-csrf_token": token, "retire-confirm": "y"},
        headers={"Accept": "application/json"},
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["retired"] == 1 and body["versions"] == [1]
    assert body["pool"]["pools"]["master"]["stale"] == 0
    assert body["pool"]["pools"]["master"]["ready"] == 3
    retired = db.session.scalars(sa.select(Campaign).where(Campaign.pool_status == "retired")).all()
    assert [c.template_version for c in retired] == [1]
    events = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "retired")).all()
    assert [e.campaign_id for e in events] == [retired[0].id]
    assert actions_recorded()[-1]["action"] == "retire_stale"


def test_replenish_queues_one_refill(pool, admin_client: FlaskClient) -> None:
    from rq import Queue

    token = dashboard_token(admin_client)
    data = {"replenish-csrf_token": token, "replenish-scope": "master"}
    headers = {"Accept": "application/json"}
    first = admin_client.post("/admin/actions/replenish", data=data, headers=headers).get_json()
    assert first["ok"] is True and first["job_id"] == "replenish-master-all"
    again = admin_client.post("/admin/actions/replenish", data=data, headers=headers).get_json()
    assert again["job_id"] is None and "already queued" in again["message"]
    queue = Queue("seeding", connection=get_redis(admin_client.application))
    assert queue.job_ids == ["replenish-master-all"]
    assert [a["action"] for a in actions_recorded()] == ["replenish", "replenish"]


def test_cleanup_needs_confirmation_and_reports_its_result(pool, admin_client: FlaskClient) -> None:
    token = dashboard_token(admin_client)
    refused = admin_client.post(
        "/admin/actions/cleanup",
        data={"cleanup-csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 400
    response = admin_client.post(
        "/admin/actions/cleanup",
        data={"cleanup-csrf_token": token, "cleanup-confirm": "y"},
        headers={"Accept": "application/json"},
    )
    body = response.get_json()
    assert body["action"] == "cleanup" and body["message"]
    assert actions_recorded()[-1]["action"] == "cleanup"
    assert body["ok"] is True, body
    assert body["campaigns_deleted"] >= 1  # the failed build (and builds stuck past timeout)
    assert body["pool"]["pools"]["master"]["failed"] == 0
    remaining = db.session.scalar(
        sa.select(sa.func.count()).where(Campaign.pool_status == "failed")
    )
    assert remaining == 0


# -- JSON endpoints ----------------------------------------------------------------------------


def test_api_pool_is_the_pool_payload(pool, admin_client: FlaskClient) -> None:
    body = admin_client.get("/admin/api/pool").get_json()
    assert body["pools"]["master"]["ready"] == 3
    assert body["template_version"] == 2
    assert set(body["ops"]) >= {"building", "workers", "alerts_active", "seeding_24h"}


@pytest.mark.parametrize(("window", "buckets"), [("1h", 13), ("24h", 25), ("7d", 29)])
def test_api_metrics_windows(pool, admin_client: FlaskClient, window: str, buckets: int) -> None:
    body = admin_client.get(f"/admin/api/metrics?window={window}").get_json()
    assert body["window"] == window
    assert len(body["labels"]) in (buckets - 1, buckets)
    n = len(body["labels"])
    for series in (
        body["pool_level"]["ready"],
        body["latency_ms"]["p95"],
        body["assignments"]["pool_hits"],
        body["assignments"]["fallbacks"],
    ):
        assert len(series) == n
    assert body["pool_level"]["ready"][-1] == 3


def test_api_metrics_refuses_unknown_windows(admin_client: FlaskClient) -> None:
    response = admin_client.get("/admin/api/metrics?window=1y")
    assert response.status_code == 400
    assert "1h, 24h, 7d" in response.get_json()["message"]


def test_metrics_are_aggregated_correctly(app: Flask, pool) -> None:
    now = utcnow()
    gm = pool["gm1"]
    for ms in range(1, 21):  # 20 assignments, 1..20 ms, 10 minutes ago
        db.session.add(
            PoolEvent(
                kind="assigned",
                user_id=gm.id,
                pool_type="master",
                duration_ms=float(ms),
                created_at=now - timedelta(minutes=10),
            )
        )
    db.session.add(PoolEvent(kind="fallback", user_id=gm.id, duration_ms=90.0))
    db.session.add(
        PoolEvent(
            kind="replenished",
            pool_type="master",
            duration_ms=50,
            created_at=now - timedelta(hours=3),
        )
    )
    db.session.commit()
    m = metrics(db.session, app.config["SETTINGS"], "24h")
    assert sum(m["assignments"]["pool_hits"]) == 20
    assert sum(m["assignments"]["fallbacks"]) == 1
    latency = [
        (p50, p95, p99)
        for p50, p95, p99 in zip(
            m["latency_ms"]["p50"], m["latency_ms"]["p95"], m["latency_ms"]["p99"], strict=True
        )
        if p50 is not None
    ]
    assert latency == [(10.0, 19.0, 20.0)]  # nearest rank over 1..20
    # Level reconstructed backwards: 3 ready now; 20 assignments 10 min ago took 20 out, one
    # build 3 h ago added one; so 23 before the assignments and 22 before that build.
    level = m["pool_level"]["ready"]
    assert level[-1] == 3 and 23 in level and level[0] == 22
    seeding = m["seeding_by_method"]["batch"]
    assert seeding["count"] == 7 and seeding["avg"] == 42.0


# -- rq-dashboard ------------------------------------------------------------------------------


def test_rq_dashboard_is_mounted_for_admins_with_csrf_for_its_buttons(
    admin_client: FlaskClient,
) -> None:
    page = admin_client.get("/admin/rq/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "js/rq-mount.js" in text and "data-csrf-token=" in text
    workers = admin_client.get("/admin/rq/0/data/workers.json")
    assert workers.status_code == 200
    # Its POST buttons are CSRF-protected like every other form.
    from rq import Queue

    queue = Queue("default", connection=get_redis(admin_client.application))
    job = queue.enqueue("jobs.pool.replenish_pool_job", "master")
    assert admin_client.post(f"/admin/rq/job/{job.id}/delete").status_code == 400
    assert job.id in queue.job_ids
    token = re.search(r'data-csrf-token="([^"]+)"', text).group(1)
    ok = admin_client.post(f"/admin/rq/job/{job.id}/delete", headers={"X-CSRFToken": token})
    assert ok.status_code == 200
    assert job.id not in queue.job_ids
