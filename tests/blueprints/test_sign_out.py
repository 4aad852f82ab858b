"""Real sign-out (docs/security.md): the server ends sign-ins, so a session or remember cookie
copied before a logout, a "sign out everywhere", a password change or a deactivation no longer
reads the portal after it. Remember cookies are HttpOnly, SameSite=Lax, Secure when configured,
and live REMEMBER_COOKIE_DAYS (14 by default)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.models import LoginSession, User, utcnow
from portal.services.accounts.users import create_user, set_active, set_password
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, AuthActions, csrf_token_from
from tests.support.databases import TestDatabases

ADMIN = "admin@example.com"
COOKIES = ("session", "remember_token")


@pytest.fixture
def make(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[Callable]:
    running: list[Iterator[Flask]] = []

    def build(**overrides: Any) -> Flask:
        generator = app_on(databases, migrated_golden, redis_url, **overrides)
        app = next(generator)
        running.append(generator)
        create_user(db.session, ADMIN, "Ada Admin", DEFAULT_PASSWORD, admin=True)
        db.session.commit()
        return app

    yield build
    for generator in reversed(running):
        for _ in generator:
            pass


def signed_in(app: Flask, remember: bool = True) -> FlaskClient:
    client = app.test_client()
    response = AuthActions(client).login(ADMIN, DEFAULT_PASSWORD, remember=remember)
    assert response.status_code == 302
    return client


def copy_of(app: Flask, client: FlaskClient, names: tuple[str, ...] = COOKIES) -> FlaskClient:
    """Another browser holding copies of `client`'s cookies (what a thief would hold)."""
    thief = app.test_client()
    for name in names:
        cookie = client.get_cookie(name)
        assert cookie is not None, f"no {name} cookie"
        thief.set_cookie(name, cookie.value)
    return thief


def reads_pool(client: FlaskClient) -> bool:
    status = client.get("/admin/api/pool").status_code
    assert status in (200, 401)
    return status == 200


def press(client: FlaskClient, form: str) -> None:
    page = client.get("/admin/").text
    token = csrf_token_from(page[page.index(f'data-testid="{form}"') :])
    action = {"logout-form": "/logout", "logout-everywhere-form": "/logout/everywhere"}[form]
    assert client.post(action, data={"csrf_token": token}).status_code == 302


def test_logout_ends_copied_session_and_remember_cookies(make) -> None:
    app = make()
    browser = signed_in(app)
    session_only = copy_of(app, browser, ("session",))
    remember_only = copy_of(app, browser, ("remember_token",))
    both = copy_of(app, browser)
    assert reads_pool(session_only) and reads_pool(remember_only) and reads_pool(both)

    press(browser, "logout-form")
    assert not reads_pool(browser)
    assert not reads_pool(session_only)
    assert not reads_pool(remember_only)
    assert not reads_pool(both)


def test_logout_ends_only_this_browser(make) -> None:
    app = make()
    laptop, phone = signed_in(app), signed_in(app)
    press(laptop, "logout-form")
    assert not reads_pool(laptop)
    assert reads_pool(phone)


def test_sign_out_everywhere_ends_every_browser_and_copy(make) -> None:
    app = make()
    laptop, phone = signed_in(app), signed_in(app)
    stolen = copy_of(app, phone, ("remember_token",))
    assert reads_pool(stolen)
    press(laptop, "logout-everywhere-form")
    assert not reads_pool(laptop) and not reads_pool(phone) and not reads_pool(stolen)
    # Signing in again works, with a new sign-in the old copies do not share.
    fresh = signed_in(app)
    assert reads_pool(fresh) and not reads_pool(stolen)


def admin_user() -> User:
    db.session.expire_all()
    return db.session.query(User).filter_by(email=ADMIN).one()


def test_a_password_change_ends_all_sign_ins(make) -> None:
    app = make()
    browser = signed_in(app)
    stolen = copy_of(app, browser)
    set_password(db.session, admin_user(), "a brand new password")
    db.session.commit()
    assert not reads_pool(browser) and not reads_pool(stolen)


def test_deactivation_ends_all_sign_ins_and_reactivation_does_not_revive_them(make) -> None:
    app = make()
    browser = signed_in(app)
    stolen = copy_of(app, browser)
    set_active(db.session, admin_user(), False)
    db.session.commit()
    assert not reads_pool(browser) and not reads_pool(stolen)
    set_active(db.session, admin_user(), True)
    db.session.commit()
    assert not reads_pool(stolen)


def test_an_admin_ends_another_accounts_sign_ins_from_the_portal(make) -> None:
    app = make()
    create_user(db.session, "second@example.com", "Second Admin", DEFAULT_PASSWORD, admin=True)
    db.session.commit()
    other = app.test_client()
    assert AuthActions(other).login("second@example.com", DEFAULT_PASSWORD).status_code == 302
    assert reads_pool(other)
    admin = signed_in(app)
    page = admin.get("/admin/users").text
    row = page[page.index('data-user="second@example.com"') :].split("</tr>")[0]
    action = row.split("/sign-out")[0].rsplit('action="', 1)[1] + "/sign-out"
    assert admin.post(action, data={"csrf_token": csrf_token_from(page)}).status_code == 302
    assert not reads_pool(other) and reads_pool(admin)


def test_a_sign_in_ends_with_the_remember_cookies_lifetime(make) -> None:
    app = make(REMEMBER_COOKIE_DAYS="3")
    browser = signed_in(app)
    record = db.session.query(LoginSession).one()
    record.created_at = utcnow() - timedelta(days=3, minutes=1)
    db.session.commit()
    assert not reads_pool(browser)


def lifetime_days(header: str) -> float:
    """Days until the cookie's Expires, from now."""
    from werkzeug.http import parse_date

    expires = parse_date(header.split("Expires=", 1)[1].split(";", 1)[0])
    assert expires is not None
    return (expires - utcnow()).total_seconds() / 86400


def set_cookie_header(response: Any, name: str) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert headers, f"no Set-Cookie for {name}"
    return headers[-1]


def login_response(app: Flask) -> Any:
    """Sign in as a browser does, Referer included: over https (the test client's scheme when
    PREFERRED_URL_SCHEME is https) Flask-WTF checks that the form came from this site."""
    client = app.test_client()
    page = client.get("/login")
    url = page.request.url
    data = {
        "csrf_token": csrf_token_from(page.text),
        "email": ADMIN,
        "password": DEFAULT_PASSWORD,
        "remember": "y",
    }
    return client.post("/login", data=data, headers={"Referer": url})


def test_remember_cookie_is_httponly_lax_and_lives_14_days(make) -> None:
    response = login_response(make())
    remember = set_cookie_header(response, "remember_token")
    assert "HttpOnly" in remember and "SameSite=Lax" in remember
    assert 13.99 < lifetime_days(remember) <= 14
    assert "Secure" not in remember  # plain http (make run): a Secure cookie would never return
    session = set_cookie_header(response, "session")
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session


@pytest.mark.parametrize(
    "settings", [{"SESSION_COOKIE_SECURE": "true"}, {"PREFERRED_URL_SCHEME": "https"}]
)
def test_cookies_are_secure_when_configured(make, settings: dict[str, str]) -> None:
    response = login_response(make(REMEMBER_COOKIE_DAYS="7", **settings))
    remember = set_cookie_header(response, "remember_token")
    assert "Secure" in remember and 6.99 < lifetime_days(remember) <= 7
    assert "Secure" in set_cookie_header(response, "session")


def test_the_cli_changes_passwords_deactivates_and_unlocks(make) -> None:
    app = make()
    browser = signed_in(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "set-password", ADMIN, "--password", "-"], input="x\n")
    assert result.exit_code == 1 and "at least 8" in result.output
    assert reads_pool(browser)
    result = runner.invoke(args=["users", "set-password", ADMIN, "--password", "new password 1"])
    assert result.exit_code == 0, result.output
    assert not reads_pool(browser)
    browser = app.test_client()
    assert AuthActions(browser).login(ADMIN, "new password 1").status_code == 302
    assert runner.invoke(args=["users", "deactivate", ADMIN]).exit_code == 0
    assert not reads_pool(browser)
    assert runner.invoke(args=["users", "activate", ADMIN]).exit_code == 0
    user = admin_user()
    user.locked_until = utcnow() + timedelta(minutes=5)
    db.session.commit()
    assert runner.invoke(args=["users", "unlock", ADMIN]).exit_code == 0
    assert admin_user().locked_until is None
    assert AuthActions(app.test_client()).login(ADMIN, "new password 1").status_code == 302
