"""Portal sign-in and sign-out (Flask-Login sessions), and the site root.

The login form is a CSRF-protected FlaskForm; the credentials are checked by the users service
(which also locks an account after repeated failures and logs every attempt), and the route is
throttled per account and per client address (`sign_in_limits`). After signing in the user goes
to `next` when it is a path on this site, else to /admin/; an absolute or scheme-relative `next`
is ignored so the login page cannot be used as an open redirect.

Every sign-in is a server-side record (`portal.services.accounts.sessions`): logging out ends
this browser's session and remember cookie on the server, "sign out everywhere" ends them all,
so a cookie copied before either no longer works (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_user, logout_user
from flask_login import login_required as _login_required

from portal.appcontext import db_session
from portal.blueprints.forms import LoginForm
from portal.blueprints.throttle import SIGN_IN_MESSAGE, sign_in_limits
from portal.extensions import db, login_manager
from portal.models import User
from portal.services.accounts.sessions import (
    end_all_sign_ins,
    end_login_session,
    start_login_session,
    user_for_sign_in,
)
from portal.services.accounts.users import LockoutPolicy, authenticate

P = ParamSpec("P")
R = TypeVar("R")
# Flask-Login ships no types: its decorator keeps the view's signature, which this says.
login_required: Callable[[Callable[P, R]], Callable[P, R]] = _login_required

log = logging.getLogger("portal.auth")

bp = Blueprint("auth", __name__)

DEFAULT_AFTER_LOGIN = "/admin/"


def load_user(user_id: str) -> User | None:
    """The user of the sign-in a session or remember cookie names, re-read on every request:
    a sign-in that was ended (logout, sign out everywhere, password change, deactivation) or
    that is older than the remember cookie's lifetime is anonymous at its next request."""
    max_age = current_app.config["REMEMBER_COOKIE_DURATION"]
    return user_for_sign_in(db_session(), user_id, max_age)


# Registered by a call rather than as a decorator: Flask-Login is untyped, and its decorator
# would hide load_user's signature from the type checker.
login_manager.user_loader(load_user)


# Request-scoped values that Flask-Login, Flask-WTF and our API decorator cache on `g`.
REQUEST_SCOPED_G = ("_login_user", "user", "api_token_id")


@bp.before_app_request
def _forget_previous_request() -> None:
    """Each request resolves its user and CSRF token from its own cookies and headers.

    These values are cached on `g`, which belongs to the app context, not the request. In
    production every request has its own app context, but whenever one app context outlives a
    request (the test fixtures push one per test; an embedded runner may too) a cached user or
    CSRF token from one request would leak into the next, e.g. a CSRF token whose session half
    was cleared at sign-in."""
    for name in (*REQUEST_SCOPED_G, current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")):
        g.pop(name, None)


def safe_next(target: object) -> str | None:
    """`target` if it is a path on this site, else None.

    Accepts only paths starting with a single `/`: rejects `//evil.example` and `/\\evil` (both
    read as another host by browsers), anything with a scheme or host, and control characters."""
    if not target or not isinstance(target, str) or len(target) > 2048:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.get("/")
def index() -> ResponseReturnValue:
    """The site root: the portal when signed in, the login page otherwise."""
    if current_user.is_authenticated:
        return redirect(DEFAULT_AFTER_LOGIN)
    return redirect(url_for("auth.login"))


@bp.errorhandler(RateLimitExceeded)
def sign_in_throttled(error: RateLimitExceeded) -> ResponseReturnValue:
    """The login form again, with the reason; Flask-Limiter adds Retry-After."""
    form = LoginForm()
    form.password.data = ""
    flash(SIGN_IN_MESSAGE, "error")
    return render_template("auth/login.html", form=form), 429


@bp.route("/login", methods=["GET", "POST"])
@sign_in_limits
def login() -> ResponseReturnValue:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(form.next.data or DEFAULT_AFTER_LOGIN)
        return render_template("auth/login.html", form=form)

    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400

    user = authenticate(
        db_session(),
        form.email.data or "",
        form.password.data or "",
        policy=LockoutPolicy.from_settings(current_app.config["SETTINGS"]),
        via="portal",
        remote_addr=request.remote_addr,
    )
    if user is None:
        flash(
            "Wrong email or password, or the account is disabled or locked for a while "
            "after too many failed attempts.",
            "error",
        )
        form.password.data = ""
        return render_template("auth/login.html", form=form), 401

    # A fresh session on sign-in, so a session id (and CSRF token) planted before login
    # is worthless afterwards.
    session.clear()
    start_login_session(db_session(), user, request.remote_addr)
    db.session.commit()
    login_user(user, remember=bool(form.remember.data))
    flash(f"Signed in as {user.name}.", "success")
    return redirect(safe_next(form.next.data) or DEFAULT_AFTER_LOGIN)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """POST only (with CSRF, checked by CSRFProtect before we get here)."""
    if current_user.is_authenticated:
        log.info("auth.logout", extra={"user_id": str(current_user.id)})
        # The server forgets this sign-in, so copies of the cookies are worthless too.
        end_login_session(db_session(), current_user._get_current_object())
        db.session.commit()
        # Not session.clear(): logout_user leaves a marker in the session that makes
        # Flask-Login delete the remember-me cookie; clearing it would keep that cookie alive.
        logout_user()
        flash("Signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere() -> ResponseReturnValue:
    """End every sign-in of the current user, in every browser (POST with CSRF)."""
    end_all_sign_ins(db_session(), current_user._get_current_object(), "sign_out_everywhere")
    db.session.commit()
    logout_user()
    flash("Signed out everywhere: every browser signed in to this account must sign in again.")
    return redirect(url_for("auth.login"))
