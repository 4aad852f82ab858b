"""Sign in and out through the real portal form, flaskr style.

CSRF stays on in tests, so `login` first GETs the page and scrapes the token the form carries,
exactly as a browser would; a test that wants to see CSRF rejection simply posts without it.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.models import User
from portal.services.accounts.tokens import issue_token
from portal.services.accounts.users import create_user

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
DEFAULT_PASSWORD = "correct horse battery"


def csrf_token_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_RE.search(html)
    assert match, "no csrf_token input on the page"
    return match.group(1)


class AuthActions:
    """Create users and drive the login/logout forms with a test client."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def create_user(
        self,
        email: str = "admin@example.com",
        password: str | None = DEFAULT_PASSWORD,
        *,
        name: str = "Ada Admin",
        admin: bool = True,
        gamemaster: bool = False,
    ) -> User:
        """A committed user (an admin unless told otherwise)."""
        user = create_user(db.session, email, name, password, admin=admin, gamemaster=gamemaster)
        db.session.commit()
        return user

    def token_for(self, user: User, name: str = "api") -> str:
        """A committed API token for `user`."""
        token = issue_token(db.session, user, name)
        db.session.commit()
        return token

    def login(
        self,
        email: str = "admin@example.com",
        password: str = DEFAULT_PASSWORD,
        next: str | None = None,
        remember: bool = False,
    ) -> TestResponse:
        """Submit the login form as a browser would (not following the redirect)."""
        page = self.client.get("/login", query_string={"next": next} if next else None)
        data = {"csrf_token": csrf_token_from(page.get_data(as_text=True)), "email": email}
        data["password"] = password
        data["next"] = next or ""
        if remember:
            data["remember"] = "y"
        return self.client.post("/login", data=data)

    def logout(self) -> TestResponse:
        """Press "Sign out" in the header of any portal page."""
        page = self.client.get("/admin/")
        token = csrf_token_from(page.get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})
