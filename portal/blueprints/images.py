"""Serves files of the local image store at /images/<key> (the embedded default).

A file is served only if its bytes are a raster image (PNG, JPEG, GIF, WebP), with the content
type those bytes prove, never one guessed from the key's extension; with `nosniff` so the
browser does not second-guess it, and a CSP that forbids everything a document could do, so
that even a file that slipped past import could not run script on the portal's origin
(docs/images.md, *Serving*).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_file
from flask.typing import ResponseReturnValue

from portal.services.images.backend import get_image_store
from portal.services.images.store import LocalImageStore

bp = Blueprint("images", __name__)

IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@bp.get("/images/<path:key>")
def show(key: str) -> ResponseReturnValue:
    store = get_image_store()
    found = store.served_file(key) if isinstance(store, LocalImageStore) else None
    if found is None:
        current_app.logger.debug("image.not_served", extra={"key": key})
        abort(404)
    path, mime = found
    response = send_file(path, mimetype=mime, max_age=31536000, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = IMAGE_CSP
    response.headers["Content-Disposition"] = "inline"
    current_app.logger.debug("image.served", extra={"key": key, "content_type": mime})
    return response
