"""The portal in a real browser: Chromium (Playwright) against the app served on 127.0.0.1
with its Socket.IO endpoint and an embedded RQ worker.

What an admin does: sign in, read the cards, press "replenish" and watch the ready count rise
without a reload, see a change made elsewhere arrive over Socket.IO, resize a pool, switch the
chart window, open rq-dashboard; and what must not work: a non-admin in the portal, a form
without its CSRF token, markup in campaign names. Screenshots go to the test artifacts.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import Campaign, PoolSetting, utcnow
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.pool.config import set_pool_setting
from tests.support.auth import DEFAULT_PASSWORD
from tests.support.browser import chromium, live_server, login, page, screenshot  # noqa: F401

pytestmark = pytest.mark.browser

ADMIN = "admin@example.com"
XSS_NAME = '<img src=x onerror="window.__pwned=1">Evil <script>window.__pwned=2</script>'


def add_ready(count: int, *, version_offset: int = 0, name: str | None = None) -> None:
    """Ready pool rows (no content: the dashboard only counts them)."""
    template = find_master_template(db.session)
    for i in range(count):
        db.session.add(
            Campaign(
                user_id=template.user_id,
                name=name if name and i == 0 else f"Pool campaign {uuid.uuid4().hex[:10]}",
                description=XSS_NAME,
                is_pool=True,
                pool_type="master",
                pool_status="ready",
                pool_created_at=utcnow(),
                template_version=template.template_version - version_offset,
            )
        )
    db.session.commit()


@pytest.fixture
def portal(template_app: Flask) -> Flask:
    """An admin, a master pool with 2 ready of a target of 3."""
    create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
    set_pool_setting(db.session, "master_target", 3)
    db.session.commit()
    add_ready(2)
    return template_app


def master_target() -> int | None:
    db.session.expire_all()
    row = db.session.get(PoolSetting, "master_target")
    return row.value if row else None


def test_admin_dashboard_live(portal, live_server, page, artifacts_dir) -> None:  # noqa: F811
    from playwright.sync_api import expect

    from portal.blueprints.admin.socket import broadcast_pool_update

    login(page, live_server.url, ADMIN, DEFAULT_PASSWORD)
    assert page.url.endswith("/admin/")
    ready = page.get_by_test_id("master-ready")
    target = page.locator('[data-bind="pools.master.target"]')
    expect(ready).to_have_text("2")
    expect(target).to_have_text("3")
    expect(
        page.get_by_test_id("card-master").locator('[data-bind="pools.master.stale"]')
    ).to_have_text("0")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#charts")).to_have_attribute("data-loaded-window", "24h")
    screenshot(page, artifacts_dir, "admin-dashboard")

    # Replenish: the worker builds the missing campaign and the card follows, same document.
    # (The worker starts now so that nothing refilled the pool before; once it runs, the
    # periodic monitor may refill too, which is fine: builds of one pool are serialized.)
    live_server.start_worker()
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("form-replenish").locator("[type=submit]").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("queued")
    expect(ready).to_have_text("3", timeout=120_000)
    assert page.evaluate("window.__sameDocument") is True
    built = db.session.scalar(
        sa.select(sa.func.count()).where(
            Campaign.is_pool.is_(True),
            Campaign.pool_status == "ready",
            Campaign.seeding_method == "batch",
        )
    )
    assert built >= 1

    # A change made elsewhere (another admin, a worker) arrives over Socket.IO.
    watermark = page.locator('[data-bind="pools.master.low_watermark"]')
    expect(watermark).to_have_text("2")
    set_pool_setting(db.session, "low_watermark", 1)
    db.session.commit()
    assert broadcast_pool_update()
    expect(watermark).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True

    # Resize from the page.
    page.select_option("#resize-pool_type", "master")
    page.fill("#resize-target", "2")
    page.get_by_test_id("form-resize").locator("[type=submit]").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("set to 2")
    expect(target).to_have_text("2")
    assert master_target() == 2
    expect(page.get_by_test_id("action-log")).to_contain_text("Target of the master pool set to 2")

    # The chart window selector asks /admin/api/metrics for another window.
    page.get_by_test_id("window-selector").get_by_text("1h").click()
    expect(page.locator("#charts")).to_have_attribute("data-loaded-window", "1h")
    assert page.evaluate("window.__sameDocument") is True
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, artifacts_dir, "admin-dashboard-mobile")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.js_errors == []

    # rq-dashboard, inside the portal and behind the same guard.
    page.get_by_role("link", name="Jobs (RQ)").click()
    page.wait_for_url("**/admin/rq/")
    expect(page.get_by_text("seeding").first).to_be_visible()
    screenshot(page, artifacts_dir, "admin-rq-dashboard")


def test_non_admin_is_refused(portal, live_server, page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    create_user(db.session, "gm@example.com", "Gamemaster", DEFAULT_PASSWORD, gamemaster=True)
    db.session.commit()
    login(page, live_server.url, "gm@example.com", DEFAULT_PASSWORD)
    expect(page.get_by_text("administrators only")).to_be_visible()
    assert page.locator('[data-testid="master-ready"]').count() == 0
    for path in ("/admin/rq/", "/admin/campaigns"):
        response = page.goto(live_server.url + path)
        assert response.status == 403, path


def test_csrf_confirmation_and_escaping(portal, live_server, page, artifacts_dir) -> None:  # noqa: F811
    from playwright.sync_api import expect

    add_ready(1, version_offset=1, name=XSS_NAME)  # a stale one, named with markup
    dialogs: list[str] = []

    login(page, live_server.url, ADMIN, DEFAULT_PASSWORD)
    # Markup in names and descriptions is shown as text and never runs.
    page.goto(live_server.url + "/admin/campaigns?status=stale")
    expect(page.get_by_test_id("campaigns-table")).to_contain_text('<img src=x onerror="')
    assert page.evaluate("window.__pwned") is None
    assert page.locator("table img").count() == 0
    screenshot(page, artifacts_dir, "admin-campaigns")

    page.goto(live_server.url + "/admin/")
    expect(
        page.get_by_test_id("card-master").locator('[data-bind="pools.master.stale"]')
    ).to_have_text("1")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")

    # A form whose CSRF token is gone is refused and changes nothing.
    page.locator("[data-testid=form-resize] input[name$=csrf_token]").evaluate("el => el.remove()")
    page.fill("#resize-target", "9")
    page.get_by_test_id("form-resize").locator("[type=submit]").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("security token")
    assert master_target() == 3

    # A destructive action asks first; dismissing sends nothing.
    retire = page.get_by_test_id("form-retire")
    retire.locator("input[type=checkbox]").check()
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    retire.locator("[type=submit]").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("security token")  # unchanged
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    retire.locator("[type=submit]").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("Retired 1 campaign")
    expect(
        page.get_by_test_id("card-master").locator('[data-bind="pools.master.stale"]')
    ).to_have_text("0")
    assert len(dialogs) == 2 and "older template version" in dialogs[0]
    assert page.evaluate("window.__pwned") is None
    assert page.js_errors == []


def test_the_rollout_card_follows_a_version_change(portal, live_server, page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    from portal.blueprints.admin.socket import broadcast_pool_update
    from portal.services.template.versions import bump_template_version

    login(page, live_server.url, ADMIN, DEFAULT_PASSWORD)
    card = page.get_by_test_id("card-rollout")
    expect(card.get_by_test_id("rollout-state")).to_have_text("up to date")
    expect(card.get_by_test_id("rollout-ready")).to_have_text("2")
    expect(card.get_by_test_id("rollout-progress")).to_have_js_property("value", 0.6667)
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")

    bump_template_version(db.session)  # the two ready campaigns are now of an old version
    assert broadcast_pool_update()

    expect(card.get_by_test_id("rollout-state")).to_have_text("rolling out")
    expect(card.locator('[data-bind="rollout.template_version"]')).to_have_text("2")
    expect(card.get_by_test_id("rollout-ready")).to_have_text("0")
    expect(card.get_by_test_id("rollout-stale")).to_have_text("2")
    expect(card.get_by_test_id("rollout-progress")).to_have_js_property("value", 0)
    expect(card).to_have_class("metric metric--warn")
    assert page.js_errors == []
