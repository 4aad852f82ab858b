"""Error handlers: JSON for the API and /health, HTML pages for the portal."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("portal.errors")


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/admin/api/", "/health"))


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> ResponseReturnValue:
        if wants_json():
            body = {"error": error.name, "message": error.description, "status": error.code}
            return jsonify(body), error.code or 500
        return render_template("error.html", error=error), error.code or 500

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("request.failed", extra={"path": request.path, "method": request.method})
        return handle_http(InternalServerError())
