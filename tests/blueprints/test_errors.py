"""Errors: JSON for machine endpoints, HTML in the portal layout for people; never a trace."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Blueprint, Flask

from portal.blueprints.errors import ApiError
from portal.extensions import csrf, db


@pytest.fixture
def failing_views(app: Flask) -> Flask:
    """Views that fail in the ways real views can, on throw-away blueprints."""
    api = Blueprint("err_api", __name__, url_prefix="/api/v2/test")
    csrf.exempt(api)
    portal = Blueprint("err_portal", __name__, url_prefix="/test")
    admin_api = Blueprint("err_admin_api", __name__, url_prefix="/admin/api/test")

    @api.get("/boom")
    @portal.get("/boom")
    def boom():
        raise RuntimeError("internal detail that must not leak")

    @portal.get("/db-boom")
    def db_boom():
        db.session.execute(sa.text("SELECT * FROM no_such_table"))
        return "unreachable"

    @api.post("/invalid")
    def invalid():
        raise ApiError(422, "invalid campaign", {"name": ["has already been taken"]})

    @admin_api.post("/action")
    def action():
        return {"ok": True}

    for bp in (api, portal, admin_api):
        app.register_blueprint(bp)
    return app


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/v2/no-such-thing")
    assert response.status_code == 404
    body = response.get_json()
    assert body["status"] == 404 and body["error"] == "Not Found"
    assert body["errors"] == {"base": [body["message"]]}


def test_unknown_portal_route_is_html_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Not Found" in html and "/static/css/portal.css" in html


def test_health_subpaths_get_json(client):
    response = client.get("/health/nope")
    assert response.status_code == 404
    assert response.is_json


def test_clients_asking_for_json_get_json(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.is_json
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert client.get("/no-such-page", headers={"Accept": browser}).mimetype == "text/html"


def test_method_not_allowed_keeps_allow_header(client):
    response = client.get("/api/v2/auth/token")
    assert response.status_code == 405
    assert response.is_json
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_a_bare_500(client, failing_views):
    api = client.get("/api/v2/test/boom")
    assert api.status_code == 500 and api.is_json
    assert api.get_json()["status"] == 500
    assert "internal detail" not in api.get_data(as_text=True)
    page = client.get("/test/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "internal detail" not in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)


def test_database_error_still_renders_the_error_page(client, auth, failing_views):
    auth.create_user(name="Ada Admin")
    auth.login()
    page = client.get("/test/db-boom")
    assert page.status_code == 500
    html = page.get_data(as_text=True)
    assert "Ada Admin" in html  # the layout could load the user after the rollback
    assert "no_such_table" not in html
    assert client.get("/admin/").status_code == 200


def test_api_error_carries_field_errors(client, failing_views):
    response = client.post("/api/v2/test/invalid")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"name": ["has already been taken"]}


def test_csrf_failure_on_admin_api_is_json_400(client, failing_views):
    response = client.post("/admin/api/test/action", json={})
    assert response.status_code == 400
    body = response.get_json()
    assert "security token" in body["message"]


def test_csrf_failure_on_portal_form_is_html_400(client):
    response = client.post("/login", data={"email": "a@example.com", "password": "whatever1"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Reload the page and try again" in response.get_data(as_text=True)
