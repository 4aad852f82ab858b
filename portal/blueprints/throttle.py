"""Rate limits shared by the HTTP layers: `sign_in_limits` for every route that checks a
password (the portal's /login, the API's token endpoint, the Chi War clients' sign-in).

Two Flask-Limiter limits, each shared by all sign-in routes so that an attacker gets the same
budget however many routes they spread over: per account (`SIGN_IN_LIMIT_ACCOUNT`, 5 per minute
by default, keyed by the email tried) and per client address (`SIGN_IN_LIMIT_ADDRESS`, 20 per
minute). Only failed attempts count (a response of 400 or more), so a user signing in and out
is never throttled, and only POSTs are limited. A refused attempt is a 429 with `Retry-After`
(JSON on the API; the portal shows the login form with a message). The account lockout itself
is in the users service (`authenticate`), where every route gets it too. docs/security.md
describes both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, current_app, request
from flask_limiter.util import get_remote_address

from portal.extensions import limiter
from portal.services.accounts.users import EMAIL_MAX, normalize_email

F = TypeVar("F", bound=Callable[..., Any])

SIGN_IN_MESSAGE = "Too many sign-in attempts. Wait a minute, then try again."
# A valid limit string for when a limit is switched off (never reached: it is exempt then).
UNUSED_LIMIT = "1000000 per second"


def sign_in_account_key() -> str:
    """The account a sign-in attempt is for: the email of the portal's form, of the API's JSON
    body (`{"email"}`), or of the Chi War clients' (`{"user": {"email"}}`), lower-cased. Never
    fails: a body that cannot be read is the caller's 4xx to give, not the limiter's."""
    email: Any = None
    try:
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            email = request.form.get("email")
        else:
            data = request.get_json(silent=True)
            if isinstance(data, dict):
                inner = data.get("user")
                email = (inner if isinstance(inner, dict) else data).get("email")
    except Exception:  # e.g. a body over MAX_CONTENT_LENGTH: the view answers 413
        email = None
    if not isinstance(email, str) or not email.strip():
        return "account:-"
    return "account:" + normalize_email(email)[:EMAIL_MAX].lower()


def _attempt_failed(response: Response) -> bool:
    return response.status_code >= 400


def _limit(name: str) -> Callable[[], str]:
    return lambda: getattr(current_app.config["SETTINGS"], name) or UNUSED_LIMIT


def _off(name: str) -> Callable[[], bool]:
    return lambda: not getattr(current_app.config["SETTINGS"], name)


_account_limit = limiter.shared_limit(
    _limit("sign_in_limit_account"),
    "sign-in-account",
    key_func=sign_in_account_key,
    methods=["POST"],
    deduct_when=_attempt_failed,
    exempt_when=_off("sign_in_limit_account"),
    error_message=SIGN_IN_MESSAGE,
)
_address_limit = limiter.shared_limit(
    _limit("sign_in_limit_address"),
    "sign-in-address",
    key_func=get_remote_address,
    methods=["POST"],
    deduct_when=_attempt_failed,
    exempt_when=_off("sign_in_limit_address"),
    error_message=SIGN_IN_MESSAGE,
)


def sign_in_limits(view: F) -> F:
    """Apply both sign-in limits to a view (see the module docstring)."""
    return cast(F, _account_limit(_address_limit(view)))
