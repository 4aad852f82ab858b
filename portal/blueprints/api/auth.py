"""Authentication of the JSON API: sign-in, sign-out, and the bearer check of every view.

Two kinds of bearer credential work everywhere, checked by one function
(`portal.services.accounts.bearer.resolve_bearer`):

* a JWT, from `POST /users/sign_in` (the Chi War web client's sign-in: the token comes back in
  the `Authorization` response header and in the body) or the CLI's device sign-in; signed out
  by `DELETE /users/sign_out`;
* an opaque API token `cp_...`, from `POST /api/v2/auth/token`; revoked by
  `DELETE /api/v2/auth/token`.

Both sign-ins check the password with the one credential check of the users service
(`authenticate`, which locks an account after repeated failures) and are throttled like every
sign-in route (`sign_in_limits`: 429 with Retry-After; docs/security.md). Views use
`@token_required`, which puts the user on `flask.g.user` and the credential on `g.bearer`, and
answers 401 for a missing or refused credential and 403 for a user without the required role.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar, overload

from flask import current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from spectree import Response as Doc

from portal.appcontext import db_session
from portal.blueprints.api.blueprint import bp, users_bp
from portal.blueprints.api.schemas import (
    CurrentUser,
    Me,
    Message,
    SignedIn,
    SignInRequest,
    Token,
    TokenRequest,
)
from portal.blueprints.errors import ApiError
from portal.blueprints.spec import Error, api_spec
from portal.blueprints.throttle import sign_in_limits
from portal.config import Settings
from portal.extensions import db
from portal.models import User
from portal.services.accounts.bearer import Bearer, resolve_bearer
from portal.services.accounts.jwt_tokens import issue_jwt, revoke_jwt
from portal.services.accounts.tokens import (
    TOKEN_NAME_MAX,
    TokenError,
    issue_token,
    revoke_token,
)
from portal.services.accounts.users import LockoutPolicy, authenticate
from portal.services.infra.text_input import text_problems
from portal.services.pool.client_campaigns import current_user_view, user_view

log = logging.getLogger("portal.api")

P = ParamSpec("P")
R = TypeVar("R")

REALM = 'Bearer realm="campaign-pool"'
INVALID_CREDENTIALS = "invalid email or password"


def settings() -> Settings:
    found: Settings = current_app.config["SETTINGS"]
    return found


def _bearer_credentials() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def authenticate_request(*, gamemaster: bool = False, admin: bool = False) -> User:
    """Resolve the bearer credential of this request or raise 401/403 as an ApiError."""
    credential = _bearer_credentials()
    if credential is None:
        raise ApiError(
            401,
            "authentication required: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": REALM},
        )
    found = resolve_bearer(db_session(), credential, settings())
    if found is None:
        raise ApiError(
            401,
            "invalid, revoked or expired token",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    if found.touched:
        # last_used_at was written (at most once a minute per token); make it stick even if
        # the view itself only reads.
        db.session.commit()
    user = found.user
    if admin and not user.admin:
        raise ApiError(403, "this action requires an admin")
    if gamemaster and not (user.gamemaster or user.admin):
        raise ApiError(403, "this action requires a gamemaster or admin")
    g.user = user
    g.bearer = found
    return user


@overload
def token_required(view: Callable[P, R]) -> Callable[P, R]: ...
@overload
def token_required(
    *, gamemaster: bool = ..., admin: bool = ...
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def token_required(
    view: Callable[P, R] | None = None, *, gamemaster: bool = False, admin: bool = False
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Require a valid bearer credential: `@token_required` or
    `@token_required(gamemaster=True)` (admins pass a gamemaster check too). Put it above
    `api_spec.validate`, so a request without credentials is a 401 whatever its body."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticate_request(gamemaster=gamemaster, admin=admin)
            return fn(*args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def current_api_user() -> User:
    """The user `token_required` authenticated for this request."""
    user: User = g.user
    return user


def current_bearer() -> Bearer:
    """The credential `token_required` accepted for this request."""
    found: Bearer = g.bearer
    return found


def _authenticate(email: str, password: str, via: str) -> User:
    """The one password check (with lockout), or the 401 every sign-in route gives."""
    user = authenticate(
        db_session(),
        email,
        password,
        policy=LockoutPolicy.from_settings(settings()),
        via=via,
        remote_addr=request.remote_addr,
    )
    if user is None:
        raise _refuse_sign_in(email)
    return user


def _refuse_sign_in(email: str) -> ApiError:
    log.warning(
        "api.sign_in_refused", extra={"email": email[:320], "remote_addr": request.remote_addr}
    )
    return ApiError(
        401,
        INVALID_CREDENTIALS,
        {"base": [INVALID_CREDENTIALS]},
        headers={"WWW-Authenticate": REALM},
    )


UNAUTHORIZED = (Error, "No bearer credential, or one that is unknown, expired or revoked.")


@users_bp.post("/users/sign_in")
@api_spec.validate(
    json=SignInRequest,
    resp=Doc(
        HTTP_200=(SignedIn, "Signed in; the JWT is also in the `Authorization` header."),
        HTTP_400=(Error, "`user.email` or `user.password` missing, blank or not a string."),
        HTTP_401=(Error, "Wrong email or password, or a deactivated user."),
        HTTP_413=Error,
        HTTP_415=Error,
        HTTP_429=(Error, "Too many failed sign-ins; try again after `Retry-After` seconds."),
    ),
    validation_error_status=400,
    security={},
)
@sign_in_limits
def sign_in() -> ResponseReturnValue:
    """Sign in as the Chi War web client does: `{"user": {"email", "password"}}` -> a JWT."""
    credentials = request.context.json.user  # type: ignore[attr-defined]
    user = _authenticate(credentials.email, credentials.password, "chiwar")
    issued = issue_jwt(user, settings())
    response = jsonify({"user": user_view(user), "token": issued.token})
    response.headers["Authorization"] = f"Bearer {issued.token}"
    return response


@users_bp.delete("/users/sign_out")
@token_required
@api_spec.validate(resp=Doc(HTTP_200=Message, HTTP_401=UNAUTHORIZED))
def sign_out() -> ResponseReturnValue:
    """Sign out the credential this request is made with: a JWT is refused from now on until it
    would have expired (its `jti` is kept in a denylist), an API token is revoked."""
    found = current_bearer()
    if found.jwt is not None:
        revoke_jwt(db_session(), found.jwt)
    elif found.token_id is not None:
        revoke_token(db_session(), found.token_id)
    db.session.commit()
    return jsonify({"message": "Signed out successfully"})


@bp.get("/users/current")
@token_required
@api_spec.validate(resp=Doc(HTTP_200=CurrentUser, HTTP_401=UNAUTHORIZED))
def users_current() -> ResponseReturnValue:
    """The signed-in user, with their current campaign and a summary of their campaigns."""
    return jsonify(current_user_view(db_session(), current_api_user()))


def _check_token_name(name: str | None) -> None:
    problems = [] if name is None else text_problems(name, visible=True)
    if name is not None and len(name) > TOKEN_NAME_MAX:
        problems.append(f"is too long (maximum is {TOKEN_NAME_MAX} characters)")
    if problems:
        raise ApiError(400, "invalid token request: name", {"name": problems})


@bp.post("/auth/token")
@api_spec.validate(
    json=TokenRequest,
    resp=Doc(
        HTTP_201=(Token, "The token, shown this once, and its user."),
        HTTP_400=(Error, "A field missing, blank, of the wrong type, unknown or too long."),
        HTTP_401=(Error, "Wrong email or password, or a deactivated user."),
        HTTP_413=Error,
        HTTP_415=Error,
        HTTP_429=(Error, "Too many failed sign-ins; try again after `Retry-After` seconds."),
    ),
    validation_error_status=400,
    security={},
)
@sign_in_limits
def create_token() -> ResponseReturnValue:
    """Trade an email and password for an opaque API token (`cp_...`)."""
    data: TokenRequest = request.context.json  # type: ignore[attr-defined]
    _check_token_name(data.name)
    user = _authenticate(data.email, data.password, "api")
    try:
        token = issue_token(db_session(), user, (data.name or "api"))
    except TokenError as error:
        db.session.rollback()
        raise ApiError(400, str(error), {"name": [str(error)]}) from None
    db.session.commit()
    log.info("api.token_issued", extra={"user_id": str(user.id)})
    body = {"token": token, "token_type": "Bearer", "user": user_view(user)}
    return jsonify(body), 201


@bp.get("/auth/me")
@token_required
@api_spec.validate(resp=Doc(HTTP_200=Me, HTTP_401=UNAUTHORIZED))
def me() -> ResponseReturnValue:
    """Who this credential belongs to: lets a client check a stored token."""
    return jsonify({"user": user_view(current_api_user())})


@bp.delete("/auth/token")
@token_required
@api_spec.validate(resp=Doc(HTTP_204=None, HTTP_401=UNAUTHORIZED))
def delete_token() -> ResponseReturnValue:
    """Revoke the credential this request is made with (sign out of the API)."""
    found = current_bearer()
    if found.token_id is not None:
        revoke_token(db_session(), found.token_id)
    elif found.jwt is not None:
        revoke_jwt(db_session(), found.jwt)
    db.session.commit()
    return "", 204
