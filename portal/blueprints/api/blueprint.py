"""The JSON API under /api/v2 (and the sign-in routes under /users the Chi War clients call),
used by the game's web client and CLI with bearer tokens.

CSRF does not apply here: requests authenticate with an `Authorization: Bearer` header that a
browser never attaches on its own, so a forged cross-site request carries no credentials.
Every error is JSON (see `portal.blueprints.errors`). Views read their body with `json_body`,
which turns every way a body can be wrong into a 4xx before the view touches the database.

Route modules register on `bp` from here; the package's `__init__` imports them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, request

from portal.blueprints.errors import ApiError
from portal.blueprints.spec import check_request_body
from portal.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v2")
csrf.exempt(bp)
# `POST /users/sign_in`, `DELETE /users/sign_out`: where the Chi War servers have them.
users_bp = Blueprint("api_users", __name__)
csrf.exempt(users_bp)

# A multipart create or update may carry an image (up to 5 MB, `images.verify`); every other
# body keeps the app's MAX_CONTENT_LENGTH.
MULTIPART_MAX_BYTES = 6 * 1024 * 1024


@bp.before_request
def larger_limit_for_uploads() -> None:
    if request.mimetype == "multipart/form-data" and request.endpoint in (
        "api.create",
        "api.update",
    ):
        request.max_content_length = MULTIPART_MAX_BYTES


bp.before_request(check_request_body)
users_bp.before_request(check_request_body)


@bp.after_request
@users_bp.after_request
def no_sniffing(response: Response) -> Response:
    """Names and descriptions are returned as sent, HTML included: JSON is data, and the
    portal's templates escape it where it is shown. This keeps a browser from ever sniffing a
    JSON answer into HTML and running what a user typed."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def json_body(required: Iterable[str] = ()) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError: 415 when it is not declared as JSON,
    400 when it does not parse or is not an object, 400 listing every missing field in
    `required` (absent, null or blank). A body over MAX_CONTENT_LENGTH is a 413 raised by
    Werkzeug while reading."""
    if not request.is_json:
        raise ApiError(
            415,
            "Content-Type must be application/json",
            {"base": ["Content-Type must be application/json"]},
        )
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "request body is empty", {"base": ["request body is empty"]})
    try:
        data = json.loads(raw)
    except ValueError as error:  # includes UnicodeDecodeError
        message = f"malformed JSON: {error}"
        raise ApiError(400, message, {"base": [message]}) from None
    except RecursionError:
        # `[[[[...]]]]` a few thousand deep fits in any body limit and exhausts the parser's
        # stack; it is bad input, not a server failure.
        message = "malformed JSON: nested too deeply"
        raise ApiError(400, message, {"base": [message]}) from None
    if not isinstance(data, dict):
        message = "request body must be a JSON object"
        raise ApiError(400, message, {"base": [message]})
    missing = {
        field: ["is required"]
        for field in required
        if data.get(field) is None or (isinstance(data.get(field), str) and not data[field].strip())
    }
    if missing:
        raise ApiError(400, "missing required fields: " + ", ".join(missing), missing)
    return data


def require_strings(data: dict[str, Any], *fields: str) -> None:
    """400 naming each of `fields` that is present but not a string."""
    wrong = {
        field: ["must be a string"]
        for field in fields
        if field in data and data[field] is not None and not isinstance(data[field], str)
    }
    if wrong:
        raise ApiError(400, "fields of the wrong type: " + ", ".join(wrong), wrong)
