"""Bearer-token authentication for the JSON API.

`POST /api/v2/auth/token` trades an email and password for a token (the only time the token is
shown); it is throttled like every sign-in route (`sign_in_limits`: 429 with Retry-After) and the
password check locks an account after repeated failures (docs/security.md). Other views use
`@token_required`, which reads `Authorization: Bearer <token>`, puts the user on `flask.g.user`
(and the token's id on `g.api_token_id`) and answers 401 for a missing, unknown or revoked token
and 403 for a user without the required role.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from flask import current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from portal.appcontext import db_session
from portal.blueprints.api.blueprint import bp, json_body, require_strings
from portal.blueprints.errors import ApiError
from portal.blueprints.throttle import sign_in_limits
from portal.extensions import db
from portal.models import User
from portal.services.accounts.tokens import (
    TOKEN_NAME_MAX,
    TokenError,
    issue_token,
    lookup_token,
    revoke_token,
)
from portal.services.accounts.users import LockoutPolicy, authenticate
from portal.services.infra.text_input import text_problems

log = logging.getLogger("portal.api")

P = ParamSpec("P")
R = TypeVar("R")

REALM = 'Bearer realm="campaign-pool"'
TOKEN_REQUEST_FIELDS = ("email", "password", "name")


def user_json(user: User) -> dict[str, Any]:
    """The public view of a user in API responses."""
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "admin": user.admin,
        "gamemaster": user.gamemaster,
        "active": user.active,
        "entity_class": "User",
    }


def _bearer_credentials() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def authenticate_request(*, gamemaster: bool = False, admin: bool = False) -> User:
    """Resolve the bearer token of this request or raise 401/403 as an ApiError."""
    token = _bearer_credentials()
    if token is None:
        raise ApiError(
            401,
            "authentication required: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": REALM},
        )
    found = lookup_token(db_session(), token, current_app.config["SETTINGS"].api_token_max_age)
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
    g.api_token_id = found.token_id
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
    """Require a valid bearer token: `@token_required` or `@token_required(gamemaster=True)`
    (admins pass a gamemaster check too)."""

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


def _check_token_request(data: dict[str, Any]) -> None:
    """400 naming every field that is of the wrong type, unknown, too long, or holds text the
    database or a hash cannot take (checked before the email reaches a query): NUL and unpaired
    surrogates anywhere, and control characters in the token's name, which is stored and shown.
    Other odd characters in an email or password are simply wrong credentials (401)."""
    require_strings(data, *TOKEN_REQUEST_FIELDS)
    errors = {
        str(key)[:50]: ["is not a known field"] for key in data if key not in TOKEN_REQUEST_FIELDS
    }
    for field in TOKEN_REQUEST_FIELDS:
        value = data.get(field)
        if isinstance(value, str):
            problems = text_problems(value, controls=field == "name", visible=field == "name")
            if field == "name" and len(value) > TOKEN_NAME_MAX:
                problems.append(f"is too long (maximum is {TOKEN_NAME_MAX} characters)")
            if problems:
                errors[field] = problems
    if errors:
        raise ApiError(400, "invalid token request: " + ", ".join(errors), errors)


@bp.post("/auth/token")
@sign_in_limits
def create_token() -> ResponseReturnValue:
    """`{email, password[, name]}` -> 201 `{token, token_type, user}`."""
    data = json_body(required=("email", "password"))
    _check_token_request(data)
    user = authenticate(
        db_session(),
        data["email"],
        data["password"],
        policy=LockoutPolicy.from_settings(current_app.config["SETTINGS"]),
        via="api",
        remote_addr=request.remote_addr,
    )
    if user is None:
        raise ApiError(
            401,
            "invalid email or password",
            {"base": ["invalid email or password"]},
            headers={"WWW-Authenticate": REALM},
        )
    try:
        token = issue_token(db_session(), user, (data.get("name") or "api"))
    except TokenError as error:
        db.session.rollback()
        raise ApiError(400, str(error), {"name": [str(error)]}) from None
    db.session.commit()
    log.info("api.token_issued", extra={"user_id": str(user.id)})
    body = {"token": token, "token_type": "Bearer", "user": user_json(user)}
    return jsonify(body), 201


@bp.get("/auth/me")
@token_required
def me() -> ResponseReturnValue:
    """Who this token belongs to: lets a client check a stored token."""
    return jsonify({"user": user_json(current_api_user())})


@bp.delete("/auth/token")
@token_required
def delete_token() -> ResponseReturnValue:
    """Revoke the token used for this request (sign out of the API)."""
    token_id: uuid.UUID = g.api_token_id
    revoke_token(db_session(), token_id)
    db.session.commit()
    return "", 204
