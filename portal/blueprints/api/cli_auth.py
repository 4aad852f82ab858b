"""The CLI's device sign-in (`chiwar login`), as the Chi War server answers it.

`POST /api/v2/cli/auth/start` -> `{code, url, expires_in}`: the CLI opens `url`, a portal page
(`/cli/auth?code=...`) where a signed-in user approves the code (a CSRF-protected form; the
page asks them to sign in first). The CLI polls `POST /api/v2/cli/auth/poll {code}`: `pending`
until approved, then `approved` with a JWT and the user exactly once; an unknown, spent or
expired code is a 410, which the CLI reads as "expired". The web client approves through
`POST /api/v2/cli/auth/approve {code}` with its own token instead of the portal page.
"""

from __future__ import annotations

import math

from flask import current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from spectree import Response as Doc

from portal.appcontext import db_session
from portal.blueprints.api.auth import UNAUTHORIZED, current_api_user, token_required
from portal.blueprints.api.blueprint import bp
from portal.blueprints.api.schemas import CliCode, CliExpired, CliPoll, CliStarted, Success
from portal.blueprints.errors import ApiError
from portal.blueprints.spec import Error, api_spec
from portal.extensions import db
from portal.models import utcnow
from portal.services.accounts.cli_auth import CliCodeError, approve_code, poll_code, start_code
from portal.services.accounts.jwt_tokens import issue_jwt
from portal.services.pool.client_campaigns import user_view

EXPIRED = "Authorization code expired"


@bp.post("/cli/auth/start")
@api_spec.validate(resp=Doc(HTTP_200=CliStarted), security={})
def cli_start() -> ResponseReturnValue:
    """A new sign-in code and the page that approves it. Takes no body (the CLI sends none)."""
    started = start_code(db_session())
    db.session.commit()
    url = url_for("auth.cli_approve", code=started.code, _external=True)
    expires_in = math.floor((started.expires_at - utcnow()).total_seconds())
    return jsonify({"code": started.code, "url": url, "expires_in": expires_in})


@bp.post("/cli/auth/poll")
@api_spec.validate(
    json=CliCode,
    resp=Doc(
        HTTP_200=(CliPoll, "`pending` (keep polling) or, once, `approved` with a JWT."),
        HTTP_400=(Error, "`code` missing or blank, or the body is not a JSON object."),
        HTTP_410=(CliExpired, "The code is unknown, already used or expired."),
        HTTP_413=Error,
        HTTP_415=Error,
    ),
    validation_error_status=400,
    security={},
)
def cli_poll() -> ResponseReturnValue:
    """Where a sign-in code stands; `approved` carries the token and the user, once."""
    code = request.context.json.code  # type: ignore[attr-defined]
    result = poll_code(db_session(), code)
    token = None
    if result.status == "approved" and result.user is not None:
        token = issue_jwt(result.user, current_app.config["SETTINGS"]).token
    db.session.commit()
    if result.status == "expired":
        return jsonify({"status": "expired", "error": EXPIRED}), 410
    if result.status == "pending":
        assert result.expires_at is not None
        seconds = max(0, math.floor((result.expires_at - utcnow()).total_seconds()))
        return jsonify({"status": "pending", "expires_in": seconds})
    assert result.user is not None
    return jsonify({"status": "approved", "token": token, "user": user_view(result.user)})


@bp.post("/cli/auth/approve")
@token_required
@api_spec.validate(
    json=CliCode,
    resp=Doc(
        HTTP_200=(Success, "Approved: the CLI's next poll signs it in as this user."),
        HTTP_400=(Error, "`code` missing or blank, or the body is not a JSON object."),
        HTTP_401=UNAUTHORIZED,
        HTTP_404=(Error, "The code is unknown or expired."),
        HTTP_409=(Error, "The code was approved already."),
        HTTP_413=Error,
        HTTP_415=Error,
    ),
    validation_error_status=400,
)
def cli_approve() -> ResponseReturnValue:
    """Approve a sign-in code with this request's credential (the web client's way)."""
    code = request.context.json.code  # type: ignore[attr-defined]
    try:
        approve_code(db_session(), code, current_api_user())
    except CliCodeError as error:
        db.session.rollback()
        if error.reason == "already_approved":
            raise ApiError(409, "Authorization code already approved") from None
        raise ApiError(404, "Authorization code not found or expired") from None
    db.session.commit()
    return jsonify({"success": True})
