"""Serves files of the local image store at /images/<key> (the embedded default)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_from_directory
from flask.typing import ResponseReturnValue

from portal.services.images.backend import get_image_store
from portal.services.images.store import SAFE_KEY, LocalImageStore

bp = Blueprint("images", __name__)


@bp.get("/images/<path:key>")
def show(key: str) -> ResponseReturnValue:
    store = get_image_store()
    if not isinstance(store, LocalImageStore) or not SAFE_KEY.match(key) or ".." in key:
        abort(404)
    response = send_from_directory(store.root, key, max_age=31536000)
    response.headers["X-Content-Type-Options"] = "nosniff"
    current_app.logger.debug("image.served", extra={"key": key})
    return response
