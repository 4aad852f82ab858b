"""Sign-in throttling and account lockout, end to end through the real login form and the API's
token endpoint (docs/security.md): per-account and per-address limits answer 429 with
Retry-After (a form message on the portal, JSON on the API), only failures count, the limits are
shared by every sign-in route, N consecutive failures lock an account for a while, an admin lifts
the lock from the portal, and every attempt is logged without the password."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.models import User, utcnow
from portal.services.accounts.users import create_user
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, csrf_token_from
from tests.support.databases import TestDatabases

GM = "gm@example.com"
ADMIN = "admin@example.com"


@pytest.fixture
def make(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[Callable]:
    """`make(**settings)`: an app on a fresh database with these settings, an admin and a
    gamemaster in it."""
    running: list[Iterator[Flask]] = []

    def build(**overrides: Any) -> Flask:
        generator = app_on(databases, migrated_golden, redis_url, **overrides)
        app = next(generator)
        running.append(generator)
        create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
        create_user(db.session, GM, "Gus GM", DEFAULT_PASSWORD, gamemaster=True)
        db.session.commit()
        return app

    yield build
    for generator in reversed(running):
        for _ in generator:
            pass


def form_login(client: FlaskClient, email: str, password: str, **environ: Any) -> Any:
    page = client.get("/login")
    data = {
        "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        "email": email,
        "password": password,
    }
    if environ:
        return client.post("/login", data=data, environ_base=environ)
    return client.post("/login", data=data)


def token_request(client: FlaskClient, email: str, password: str) -> Any:
    return client.post("/api/v2/auth/token", json={"email": email, "password": password})


def retry_after(response: Any) -> int:
    value = int(response.headers["Retry-After"])
    assert 0 < value <= 60
    return value


def test_the_login_form_is_throttled_per_account(make) -> None:
    client = make().test_client()
    for _ in range(5):
        assert form_login(client, GM, "wrong password").status_code == 401
    refused = form_login(client, GM, "wrong password")
    assert refused.status_code == 429
    retry_after(refused)
    html = refused.get_data(as_text=True)
    assert "Too many sign-in attempts" in html and 'name="password"' in html
    # Even the right password waits now: that is what stops a guesser at the sixth try.
    assert form_login(client, GM, DEFAULT_PASSWORD).status_code == 429
    # Another account from the same address is not affected by this account's limit.
    assert form_login(client, ADMIN, DEFAULT_PASSWORD).status_code == 302


def test_the_token_endpoint_is_throttled_with_a_json_429(make) -> None:
    client = make().test_client()
    for _ in range(5):
        assert token_request(client, GM, "wrong password").status_code == 401
    refused = token_request(client, GM, DEFAULT_PASSWORD)
    assert refused.status_code == 429
    retry_after(refused)
    body = refused.get_json()
    assert body["status"] == 429 and "Too many sign-in attempts" in body["errors"]["base"][0]


def test_sign_in_routes_share_one_budget_per_account(make) -> None:
    client = make().test_client()
    for _ in range(3):
        assert form_login(client, GM, "wrong").status_code == 401
    for _ in range(2):
        assert token_request(client, GM, "wrong").status_code == 401
    assert form_login(client, GM, "wrong").status_code == 429
    assert token_request(client, GM, DEFAULT_PASSWORD).status_code == 429


def test_the_address_limit_spans_accounts(make) -> None:
    client = make(SIGN_IN_LIMIT_ACCOUNT="off").test_client()
    for i in range(20):
        assert token_request(client, f"nobody{i}@example.com", "guess").status_code == 401
    assert token_request(client, "another@example.com", "guess").status_code == 429
    assert form_login(client, GM, DEFAULT_PASSWORD).status_code == 429


def test_only_failures_count(make) -> None:
    client = make().test_client()
    for _ in range(8):
        assert form_login(client, GM, DEFAULT_PASSWORD).status_code == 302
        page = client.get("/admin/")  # a 403 page for a gamemaster, with the sign-out form
        client.post("/logout", data={"csrf_token": csrf_token_from(page.text)})
        assert token_request(client, GM, DEFAULT_PASSWORD).status_code == 201


def test_limits_are_configurable(make) -> None:
    client = make(SIGN_IN_LIMIT_ACCOUNT="2 per minute").test_client()
    for _ in range(2):
        assert token_request(client, GM, "wrong").status_code == 401
    assert token_request(client, GM, "wrong").status_code == 429


def lock_state(email: str) -> tuple[int, bool]:
    db.session.expire_all()
    user = db.session.query(User).filter_by(email=email).one()
    return user.failed_sign_ins, user.locked_until is not None and user.locked_until > utcnow()


def test_consecutive_failures_lock_the_account_until_an_admin_lifts_it(make) -> None:
    app = make(SIGN_IN_LIMIT_ACCOUNT="off", SIGN_IN_LIMIT_ADDRESS="off", LOCKOUT_THRESHOLD="3")
    client = app.test_client()
    assert token_request(client, GM, "wrong").status_code == 401
    assert token_request(client, GM, "wrong").status_code == 401
    assert lock_state(GM) == (2, False)
    assert form_login(client, GM, "wrong").status_code == 401
    assert lock_state(GM)[1] is True
    # Locked: the right password is refused on every route, with the same answer as a wrong one.
    locked = token_request(client, GM, DEFAULT_PASSWORD)
    assert locked.status_code == 401 and "invalid email or password" in locked.text
    assert form_login(client, GM, DEFAULT_PASSWORD).status_code == 401

    admin = app.test_client()
    assert form_login(admin, ADMIN, DEFAULT_PASSWORD).status_code == 302
    page = admin.get("/admin/users")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-user="{GM}"') :]
    assert 'data-testid="locked"' in row.split("</tr>")[0]
    action = row.split('data-testid="unlock-form"')[0].rsplit('action="', 1)[1].split('"')[0]
    # The unlock is a POST with the CSRF token; without it nothing changes.
    assert admin.post(action).status_code == 400
    assert lock_state(GM)[1] is True
    done = admin.post(action, data={"csrf_token": csrf_token_from(page.text)})
    assert done.status_code == 302
    assert lock_state(GM) == (0, False)
    assert token_request(client, GM, DEFAULT_PASSWORD).status_code == 201


def test_a_lock_ends_by_itself_and_success_resets_the_count(make) -> None:
    app = make(SIGN_IN_LIMIT_ACCOUNT="off", LOCKOUT_THRESHOLD="2", LOCKOUT_MINUTES="5")
    client = app.test_client()
    assert token_request(client, GM, "wrong").status_code == 401
    assert token_request(client, GM, DEFAULT_PASSWORD).status_code == 201
    assert lock_state(GM) == (0, False)  # not consecutive: the count started over
    for _ in range(2):
        token_request(client, GM, "wrong")
    user = db.session.query(User).filter_by(email=GM).one()
    assert timedelta(minutes=4) < user.locked_until - utcnow() <= timedelta(minutes=5)
    user.locked_until = utcnow() - timedelta(seconds=1)  # five minutes later
    db.session.commit()
    assert token_request(client, GM, DEFAULT_PASSWORD).status_code == 201


def test_attempts_are_logged_without_the_password(make, caplog) -> None:
    client = make().test_client()
    secret = "Tr0ub4dor&3-not-it"
    with caplog.at_level(logging.INFO, logger="portal"):
        form_login(client, GM, secret)
        token_request(client, "nobody@example.com", secret)
        token_request(client, GM, DEFAULT_PASSWORD)
    attempts = [r for r in caplog.records if r.getMessage().startswith("auth.sign_in")]
    outcomes = [(r.getMessage(), getattr(r, "reason", None), r.via) for r in attempts]
    assert outcomes == [
        ("auth.sign_in_failed", "wrong_password", "portal"),
        ("auth.sign_in_failed", "unknown", "api"),
        ("auth.sign_in", None, "api"),
    ]
    assert all(r.remote_addr == "127.0.0.1" for r in attempts)
    assert secret not in caplog.text and DEFAULT_PASSWORD not in caplog.text
