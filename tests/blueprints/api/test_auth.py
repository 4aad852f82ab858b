"""The JSON API's authentication: `POST /api/v2/auth/token` and bearer tokens."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify

from portal.extensions import db
from portal.models import ApiToken, utcnow
from portal.services.accounts.tokens import hash_token
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, AuthActions

TOKEN_URL = "/api/v2/auth/token"


def token_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_endpoint_issues_a_working_token(client, auth):
    user = auth.create_user(email="GM@example.com", admin=False, gamemaster=True, name="GM")
    response = client.post(
        TOKEN_URL, json={"email": "gm@example.com", "password": DEFAULT_PASSWORD, "name": "web"}
    )
    assert response.status_code == 201
    body = response.get_json()
    token = body["token"]
    assert token.startswith("cp_")
    assert body["token_type"] == "Bearer"
    assert body["user"] == {
        "id": str(user.id),
        "email": "GM@example.com",
        "name": "GM",
        "admin": False,
        "gamemaster": True,
        "active": True,
        "entity_class": "User",
    }
    assert "password_hash" not in response.get_data(as_text=True)
    record = db.session.scalars(sa.select(ApiToken)).one()
    assert record.token_hash == hash_token(token) and record.name == "web"

    me = client.get("/api/v2/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.get_json()["user"]["id"] == str(user.id)


def test_token_endpoint_needs_no_csrf_token(app, client, auth):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    auth.create_user()
    response = client.post(
        TOKEN_URL, json={"email": "admin@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "admin@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": DEFAULT_PASSWORD},
    ],
)
def test_wrong_credentials_get_401(client, auth, credentials):
    auth.create_user()
    response = client.post(TOKEN_URL, json=credentials)
    assert response.status_code == 401
    assert response.get_json()["errors"] == {"base": ["invalid email or password"]}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert token_count() == 0


def test_inactive_user_gets_no_token(client, auth):
    user = auth.create_user()
    user.active = False
    db.session.commit()
    response = client.post(
        TOKEN_URL, json={"email": "admin@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401
    assert token_count() == 0


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"email": "admin@example.com", "password": ', "malformed JSON"),
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        ('"just a string"', "JSON object"),
        (b'{"email": "\xff"}', "malformed JSON"),
    ],
)
def test_malformed_json_is_a_400(client, data, fragment):
    response = client.post(TOKEN_URL, data=data, content_type="application/json")
    assert response.status_code == 400
    body = response.get_json()
    assert fragment in body["message"]
    assert body["errors"]["base"]
    assert token_count() == 0


def test_missing_fields_are_listed(client):
    response = client.post(TOKEN_URL, json={"email": "  ", "other": 1})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "email": ["is required"],
        "password": ["is required"],
    }


def test_wrong_field_types_are_a_400(client):
    response = client.post(TOKEN_URL, json={"email": ["a"], "password": 12345678})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "email": ["must be a string"],
        "password": ["must be a string"],
    }


def test_wrong_content_type_is_a_415(client, auth):
    auth.create_user()
    body = json.dumps({"email": "admin@example.com", "password": DEFAULT_PASSWORD})
    response = client.post(TOKEN_URL, data=body, content_type="text/plain")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["message"]
    form = client.post(TOKEN_URL, data={"email": "admin@example.com", "password": "x"})
    assert form.status_code == 415
    assert token_count() == 0


def test_body_over_one_mebibyte_is_a_413(client, auth):
    auth.create_user()
    padding = "x" * (1024 * 1024)
    body = json.dumps({"email": "admin@example.com", "password": DEFAULT_PASSWORD, "pad": padding})
    response = client.post(TOKEN_URL, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.is_json and response.get_json()["status"] == 413
    assert token_count() == 0


def test_overlong_token_name_is_a_400(client, auth):
    auth.create_user()
    response = client.post(
        TOKEN_URL,
        json={"email": "admin@example.com", "password": DEFAULT_PASSWORD, "name": "n" * 201},
    )
    assert response.status_code == 400
    assert "name" in response.get_json()["errors"]
    assert token_count() == 0


def test_revoked_token_is_refused(client, auth):
    user = auth.create_user()
    token = auth.token_for(user)
    other = auth.token_for(user, "other")
    assert client.get("/api/v2/auth/me", headers=bearer(token)).status_code == 200
    assert client.delete(TOKEN_URL, headers=bearer(token)).status_code == 204
    assert client.get("/api/v2/auth/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v2/auth/me", headers=bearer(other)).status_code == 200


@pytest.mark.parametrize(
    ("ttl_days", "age_days", "status"),
    [(30, 29, 200), (30, 31, 401), (0, 5000, 200)],
    ids=["within its lifetime", "expired", "expiry off"],
)
def test_a_token_expires_api_token_ttl_days_after_it_was_issued(
    databases, migrated_golden, redis_url, ttl_days, age_days, status
):
    for app in app_on(databases, migrated_golden, redis_url, API_TOKEN_TTL_DAYS=str(ttl_days)):
        client = app.test_client()
        auth = AuthActions(client)
        token = auth.token_for(auth.create_user())
        db.session.execute(
            sa.update(ApiToken).values(created_at=utcnow() - timedelta(days=age_days))
        )
        db.session.commit()
        assert client.get("/api/v2/auth/me", headers=bearer(token)).status_code == status


def test_using_a_token_records_last_used_at(client, auth):
    user = auth.create_user()
    token = auth.token_for(user)
    assert client.get("/api/v2/auth/me", headers=bearer(token)).status_code == 200
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiToken.last_used_at)) is not None


@pytest.fixture
def role_views(app: Flask):
    """Views guarded by role, registered on a throw-away blueprint for this test only."""
    from flask import Blueprint

    from portal.blueprints.api.auth import token_required
    from portal.extensions import csrf

    bp = Blueprint("role_test", __name__, url_prefix="/api/v2/test")
    csrf.exempt(bp)

    @bp.post("/gm")
    @token_required(gamemaster=True)
    def gm_only():
        return jsonify(ok=True)

    @bp.post("/admin")
    @token_required(admin=True)
    def admin_only():
        return jsonify(ok=True)

    app.register_blueprint(bp)
    return app


def test_role_requirements_give_403(client, auth, role_views):
    player = auth.create_user(email="p@example.com", admin=False, gamemaster=False)
    gm = auth.create_user(email="gm@example.com", admin=False, gamemaster=True)
    admin = auth.create_user(email="a@example.com", admin=True, gamemaster=False)
    tokens = {u.email: auth.token_for(u) for u in (player, gm, admin)}

    def status(email: str, path: str) -> int:
        return client.post(f"/api/v2/test/{path}", headers=bearer(tokens[email])).status_code

    assert status("p@example.com", "gm") == 403
    assert status("gm@example.com", "gm") == 200
    assert status("a@example.com", "gm") == 200  # admins pass gamemaster checks
    assert status("gm@example.com", "admin") == 403
    assert status("a@example.com", "admin") == 200
    body = client.post("/api/v2/test/gm", headers=bearer(tokens["p@example.com"])).get_json()
    assert body["status"] == 403 and "gamemaster" in body["message"]
