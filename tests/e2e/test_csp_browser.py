"""Every portal page in Chromium with the Content-Security-Policy on: zero CSP violations, zero
console errors, zero script errors, and the pages still work (the dashboard goes live over
Socket.IO and draws its charts, rq-dashboard lists its queues and jobs). Descriptions show as
plain text. docs/security.md describes the policy."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from portal.models import Campaign, utcnow
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import get_redis
from tests.support.auth import DEFAULT_PASSWORD
from tests.support.browser import chromium, live_server, login, page  # noqa: F401

pytestmark = pytest.mark.browser

ADMIN = "admin@example.com"
ERROR_PAGE = "/admin/no-such-page"
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile
                    + ':' + e.lineNumber);
});
"""


@pytest.fixture
def portal(template_app: Flask) -> dict[str, Any]:
    """An admin, a ready pool campaign whose description is HTML, a failed job to look at."""
    create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
    template = find_master_template(db.session)
    db.session.add(
        Campaign(
            user_id=template.user_id,
            name="Pool campaign with an HTML description",
            description="<p>The master template &amp; <b>friends</b></p>",
            is_pool=True,
            pool_type="master",
            pool_status="ready",
            pool_created_at=utcnow(),
            template_version=template.template_version,
        )
    )
    db.session.commit()
    from rq import Queue

    job = Queue("default", connection=get_redis(template_app)).enqueue("builtins.len", "abc")
    return {"job_id": job.id}


def watch(page: Any) -> list[str]:  # noqa: F811
    """Console errors (CSP refusals are reported there too) and uncaught script errors."""
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        url = (msg.location or {}).get("url", "")
        # The error page's own 404 status is reported as a failed load; it is what we asked for.
        if msg.type == "error" and not url.endswith(ERROR_PAGE):
            problems.append(f"console {msg.type}: {msg.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.add_init_script(WATCH_CSP)
    return problems


def visit(page: Any, url: str, ready: str | None = None) -> dict[str, str]:  # noqa: F811
    response = page.goto(url)
    assert response is not None and response.status < 500, url
    if ready:
        page.wait_for_selector(ready)
    page.wait_for_load_state("load")
    return response.headers


def test_every_portal_page_runs_under_the_csp(portal, live_server, page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    problems = watch(page)
    base = live_server.url
    headers = visit(page, f"{base}/login")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    login(page, base, ADMIN, DEFAULT_PASSWORD)

    # The dashboard: live over Socket.IO (WebSocket, same origin) and charts drawn.
    visit(page, f"{base}/admin/")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#charts")).to_have_attribute("data-loaded-window", "24h")
    seen = {"/admin/": page.evaluate("window.__csp")}

    visit(page, f"{base}/admin/campaigns")
    cell = page.locator(".cell-desc").first
    expect(cell).to_have_text("The master template & friends")
    seen["/admin/campaigns"] = page.evaluate("window.__csp")

    for path, ready in (
        ("/admin/analytics", "#analytics-charts"),
        ("/admin/users", '[data-testid="users-table"]'),
        (ERROR_PAGE, ".error-page"),
        ("/admin/rq/", 'tr[data-role="queue"], #queues tbody tr'),
        ("/admin/rq/0/view/workers", "#workers tbody tr"),
        ("/admin/rq/0/view/jobs/default/queued/8/asc/1", 'tr[data-role="job"]'),
        (f"/admin/rq/0/view/job/{portal['job_id']}", "#job-data, .section"),
    ):
        visit(page, f"{base}{path}", ready)
        if path.startswith("/admin/rq/"):
            # rq-dashboard's own script ran (it fills the tables from its JSON) under the nonce.
            page.wait_for_function(
                "() => !document.querySelector('[data-role=loading-placeholder]')"
            )
        seen[path] = page.evaluate("window.__csp")

    violations = {path: found for path, found in seen.items() if found}
    assert violations == {}, violations
    assert problems == [], problems
