"""The JSON API under /api/v2 (and the sign-in routes under /users the Chi War clients call),
used by the game's web client and CLI with bearer tokens.

CSRF does not apply here: requests authenticate with an `Authorization: Bearer` header that a
browser never attaches on its own, so a forged cross-site request carries no credentials.
Every error is JSON (see `portal.blueprints.errors`). Bodies are checked (`check_request_body`)
and validated against the views' declared models (`portal.blueprints.spec`) before a view runs,
so every way a body can be wrong is a 4xx before the view touches the database.

Route modules register on `bp` from here; the package's `__init__` imports them.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from portal.blueprints.spec import check_request_body
from portal.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v2")
csrf.exempt(bp)
# `POST /users/sign_in`, `DELETE /users/sign_out`: where the Chi War servers have them.
users_bp = Blueprint("api_users", __name__)
csrf.exempt(users_bp)

# A multipart create or update may carry an image (up to 5 MB, `images.rasters`); every other
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
