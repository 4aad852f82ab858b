"""Security headers on every response (docs/security.md): a Content-Security-Policy without
inline script, frame-ancestors 'none' and X-Frame-Options DENY, nosniff, Referrer-Policy
same-origin; rq-dashboard's pages get a nonce for its one inline script. The browser test
(test_csp_browser.py) shows the portal works under the policy; this one pins the headers and
that no template of ours carries inline script, handlers or styles."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from portal.blueprints.headers import PORTAL_CSP
from tests.support import PROJECT_ROOT
from tests.support.auth import AuthActions

TEMPLATES = PROJECT_ROOT / "portal" / "templates"


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    auth.create_user()
    assert auth.login().status_code == 302
    return client


def policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def assert_headers(response) -> dict[str, str]:
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    csp = policy(response)
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    return csp


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/admin/",
        "/admin/campaigns",
        "/admin/analytics",
        "/admin/users",
        "/admin/api/pool",
        "/health",
        "/api/v2/campaigns",
        "/api/v2/openapi.json",
        "/no-such-page",
        "/static/css/portal.css",
    ],
)
def test_every_response_carries_the_headers(admin_client: FlaskClient, path: str) -> None:
    csp = assert_headers(admin_client.get(path))
    assert csp == PORTAL_CSP
    assert "unsafe" not in csp["script-src"] and "unsafe" not in csp["style-src"]


def test_anonymous_and_error_answers_carry_them_too(client: FlaskClient) -> None:
    for response in (
        client.get("/admin/"),  # redirect to the login page
        client.post("/logout"),  # CSRF refused
        client.post("/api/v2/auth/token", data="{", content_type="application/json"),
    ):
        assert_headers(response)


def test_rq_dashboard_pages_get_a_nonce_for_its_one_inline_script(admin_client) -> None:
    response = admin_client.get("/admin/rq/")
    csp = assert_headers(response)
    nonce = re.search(r"'nonce-([^']+)'", csp["script-src"]).group(1)
    html = response.text
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    executable = [attrs for attrs in inline if "text/template" not in attrs]
    assert executable == [f' nonce="{nonce}" type="text/javascript"']
    # A new nonce for every response.
    again = policy(admin_client.get("/admin/rq/"))["script-src"]
    assert nonce not in again


def test_no_template_of_ours_has_inline_script_handlers_or_styles() -> None:
    offenders = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for match in re.finditer(r"<script\b([^>]*)>", text):
            attrs = match.group(1)
            if "src=" not in attrs and 'type="application/json"' not in attrs:
                offenders.append(f"{path.name}: inline <script{attrs}>")
        for pattern in (r"<style\b", r"\sstyle=", r"\son[a-z]+=", r"javascript:"):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert not offenders, offenders


SECURITY_SETTINGS = (
    "SIGN_IN_LIMIT_ACCOUNT",
    "SIGN_IN_LIMIT_ADDRESS",
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_MINUTES",
    "REMEMBER_COOKIE_DAYS",
    "SESSION_COOKIE_SECURE",
    "PREFERRED_URL_SCHEME",
    "PROXY_FIX_HOPS",
    "SOCKETIO_ORIGINS",
    "HEALTH_TOKEN",
    "CAMPAIGN_CREATE_LIMIT",
    "CAMPAIGN_CAP_PER_USER",
)


def test_docs_security_states_every_security_setting() -> None:
    from portal.config import ENV_NAMES

    doc = (PROJECT_ROOT / "docs" / "security.md").read_text()
    assert set(SECURITY_SETTINGS) <= ENV_NAMES
    missing = [name for name in SECURITY_SETTINGS if f"| `{name}` |" not in doc]
    assert not missing, missing
