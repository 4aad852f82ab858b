"""Error handlers: JSON for the API, /admin/api and /health, HTML pages for the portal.

Machine clients (the game's web client, load balancers, the dashboard's fetch calls) get one
JSON shape for every failure:

    {"error": "Bad Request", "message": "...", "status": 400, "errors": {"field": ["..."]}}

`errors` follows the original Rails API (`{"name": ["has already been taken"]}`); problems
that belong to no single field are listed under `base`. People get an HTML page in the portal
layout. Unexpected exceptions are logged with the request path and answered with a bare 500:
no stack traces or internal messages leak to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger("portal.errors")

JSON_PREFIXES = ("/api/", "/admin/api/", "/users/", "/socket/")
CSRF_MESSAGE = (
    "The form could not be accepted because its security token was missing or invalid. "
    "This happens when a page was open for a long time or the form came from another site. "
    "Reload the page and try again."
)
DATABASE_UNAVAILABLE_MESSAGE = (
    "The database is unavailable for a moment (restarting or unreachable). Try again in a few "
    "seconds; a create that got this answer may still have completed, so list your campaigns "
    "before creating it again."
)
DATABASE_RETRY_AFTER_S = 2


class ApiError(Exception):
    """Raise from a JSON view to answer with `status` and field errors, e.g.
    `raise ApiError(422, "invalid campaign", {"name": ["has already been taken"]})`."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.headers = dict(headers or {})


def wants_json() -> bool:
    """Whether this request should get JSON errors: machine endpoints by path, or any client
    that asks for JSON rather than HTML."""
    path = request.path
    if path in ("/api", "/health", "/admin/api") or path.startswith(JSON_PREFIXES):
        return True
    if path.startswith("/health/"):
        return True
    # best_match prefers the first offer on a tie, so browsers (and `*/*`) get HTML.
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def json_error(
    status: int,
    message: str,
    errors: Mapping[str, Sequence[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error response every machine endpoint uses."""
    body = {
        "error": HTTP_STATUS_CODES.get(status, "Error"),
        "message": message,
        "status": status,
        "errors": {k: list(v) for k, v in errors.items()} if errors else {"base": [message]},
    }
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _passthrough_headers(error: HTTPException) -> dict[str, str]:
    """Headers the exception itself defines (Allow on 405, WWW-Authenticate on 401...)."""
    skip = {"content-type", "content-length"}
    return {k: v for k, v in error.get_headers() if k.lower() not in skip}


def _html_error(code: int, name: str, description: str, headers: Mapping[str, str]) -> Response:
    try:
        body = render_template("error.html", code=code, name=name, description=description)
    except Exception:  # the layout itself failed (e.g. the database is down): stay minimal
        log.exception("error_page.render_failed", extra={"path": request.path, "status": code})
        body = f"<!doctype html><title>{code} {name}</title><h1>{code} {name}</h1>"
    response = Response(body, status=code, mimetype="text/html")
    for key, value in headers.items():
        response.headers[key] = value
    return response


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> ResponseReturnValue:
        return json_error(error.status, error.message, error.errors or None, error.headers)

    @app.errorhandler(CSRFError)
    def handle_csrf(error: CSRFError) -> ResponseReturnValue:
        log.warning(
            "request.csrf_rejected",
            extra={"path": request.path, "reason": error.description},
        )
        if wants_json():
            return json_error(400, f"{CSRF_MESSAGE} ({error.description})")
        return _html_error(400, "Form expired or invalid", CSRF_MESSAGE, {})

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> ResponseReturnValue:
        code = error.code or 500
        headers = _passthrough_headers(error)
        if wants_json():
            return json_error(code, error.description or error.name, headers=headers)
        return _html_error(code, error.name, error.description or "", headers)

    @app.errorhandler(DBAPIError)
    def handle_database_error(error: DBAPIError) -> ResponseReturnValue:
        """A database that is down or restarting is an outage the client can wait out (503 and
        Retry-After, as for a load balancer's health check), not a bug (500)."""
        from portal.services.infra.database import database_unavailable

        if not database_unavailable(error):
            return handle_unexpected(error)
        log.warning(
            "request.database_unavailable",
            extra={
                "path": request.path,
                "method": request.method,
                "error": (str(error.orig).strip().splitlines() or [""])[0][:200],
            },
        )
        _rollback_session()
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        if wants_json():
            return json_error(503, DATABASE_UNAVAILABLE_MESSAGE, headers=headers)
        return _html_error(503, "Service Unavailable", DATABASE_UNAVAILABLE_MESSAGE, headers)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("request.failed", extra={"path": request.path, "method": request.method})
        _rollback_session()
        return handle_http(InternalServerError())


def _rollback_session() -> None:
    """A failed statement leaves the session unusable; roll back so rendering the error page
    (which loads the signed-in user) does not fail the same way."""
    try:
        from portal.extensions import db

        db.session.rollback()
    except Exception:
        log.exception("request.rollback_failed")
