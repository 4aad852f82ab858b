"""Portal sign-in/out through the real form, CSRF, and the admin guard."""

from __future__ import annotations

import pytest

from portal.blueprints.auth import safe_next
from portal.extensions import db
from portal.models import Campaign, Schtick, User, Weapon
from tests.support.auth import DEFAULT_PASSWORD, csrf_token_from


def signed_in_user_id(client) -> str | None:
    with client.session_transaction() as session:
        value = session.get("_user_id")
        # Flask-Login's alternative id: "<user id>:<session version>:<login session id>".
        return value.split(":")[0] if value else None


def test_root_redirects_to_login_then_to_admin(client, auth):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    auth.create_user()
    auth.login()
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/")


def test_login_page_renders_form_with_csrf(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert csrf_token_from(html)
    assert 'name="email"' in html and 'name="password"' in html
    assert "/static/css/portal.css" in html
    assert "https://" not in html  # no CDN


def test_login_and_logout_through_the_form(client, auth):
    user = auth.create_user(name="Ada Admin")
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/")
    assert signed_in_user_id(client) == str(user.id)

    page = client.get("/admin/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Signed in as Ada Admin." in html  # the flash
    assert "admin@example.com" in html
    assert 'action="/logout"' in html

    response = auth.logout()
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    assert signed_in_user_id(client) is None
    assert client.get("/admin/").status_code == 302
    assert "Signed out." in client.get("/login").get_data(as_text=True)


def test_email_is_case_insensitive_at_login(client, auth):
    auth.create_user(email="Ada@Example.com")
    assert auth.login(email="ada@EXAMPLE.com").status_code == 302
    assert signed_in_user_id(client) is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("admin@example.com", "wrong password"),
        ("nobody@example.com", DEFAULT_PASSWORD),
    ],
)
def test_wrong_credentials_are_refused(client, auth, email, password):
    auth.create_user()
    response = auth.login(email=email, password=password)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Wrong email or password" in html
    assert password not in html  # the password field is not echoed back
    assert signed_in_user_id(client) is None


def test_empty_form_is_a_400_with_field_errors(client):
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "email": "", "password": ""})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter your email address." in html and "Enter your password." in html


def test_inactive_user_is_refused(client, auth):
    user = auth.create_user()
    user.active = False
    db.session.commit()
    assert auth.login().status_code == 401
    assert signed_in_user_id(client) is None


def test_deactivated_user_is_signed_out_at_next_request(client, auth):
    user = auth.create_user()
    auth.login()
    assert client.get("/admin/").status_code == 200
    user.active = False
    db.session.commit()
    assert client.get("/admin/").status_code == 302


def test_login_without_csrf_token_is_rejected(client, auth):
    assert client.application.config.get("WTF_CSRF_ENABLED", True) is True
    auth.create_user()
    client.get("/login")  # a session exists, so only the token is missing
    response = client.post(
        "/login", data={"email": "admin@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "security token" in html
    assert "<!doctype html>" in html.lower()
    assert signed_in_user_id(client) is None


def test_logout_requires_post_with_csrf(client, auth):
    user = auth.create_user()
    auth.login()
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert signed_in_user_id(client) == str(user.id)


def test_next_is_followed_only_when_local(client, auth):
    auth.create_user()
    response = auth.login(next="/admin/?tab=pool")
    assert response.headers["Location"].endswith("/admin/?tab=pool")
    auth.logout()
    response = auth.login(next="https://evil.example/phish")
    assert response.headers["Location"].endswith("/admin/")
    assert "evil" not in response.headers["Location"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/", "/admin/"),
        ("/admin/?a=1#x", "/admin/?a=1#x"),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("admin", None),
        ("/admin/\r\nSet-Cookie: x=1", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_login_redirect_carries_next(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_admin_page_guards(client, auth):
    assert client.get("/admin/").status_code == 302
    auth.create_user(email="player@example.com", admin=False, gamemaster=True, name="Pat Player")
    auth.login(email="player@example.com")
    response = client.get("/admin/")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "administrators only" in html
    assert "Pat Player" in html and 'action="/logout"' in html  # the layout still works
    auth.logout()

    auth.create_user(email="boss@example.com", admin=True)
    auth.login(email="boss@example.com")
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "No master template yet" in response.get_data(as_text=True)
    assert 'href="/health"' in response.get_data(as_text=True)


def test_admin_page_shows_master_template_counts(client, auth):
    owner = auth.create_user(email="owner@example.com", password=None, admin=False)
    master = Campaign(user_id=owner.id, name="Master Template", is_master_template=True)
    other = Campaign(user_id=owner.id, name="Someone's game")
    db.session.add_all([master, other])
    db.session.flush()
    db.session.add_all(
        [Schtick(campaign_id=master.id, name=f"S{i}", category="Guns") for i in range(3)]
        + [Weapon(campaign_id=master.id, name="Colt")]
        + [Schtick(campaign_id=other.id, name="Not counted", category="Guns")]
    )
    db.session.commit()
    auth.create_user()
    auth.login()
    html = client.get("/admin/").get_data(as_text=True)
    assert "Master Template" in html
    assert 'data-testid="count-schticks">3<' in html
    assert 'data-testid="count-weapons">1<' in html
    assert 'data-testid="count-factions">0<' in html


def test_user_loader_ignores_garbage_session_ids(client, auth):
    auth.create_user()
    with client.session_transaction() as session:
        session["_user_id"] = "not-a-uuid"
        session["_fresh"] = True
    assert client.get("/admin/").status_code == 302
    assert db.session.query(User).count() == 1
