"""The image store the configuration chooses, bound to the application at start-up.

`create_app` builds it once (`init_image_store`); services are handed the store, and the few
entry points that have only the app look it up with `get_image_store`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from portal.services.images.imagekit import ImageKitStore
from portal.services.images.store import ImageStore, LocalImageStore


def build_image_store(app: Flask) -> ImageStore:
    """The store the configuration asks for: ImageKit when configured, else local files."""
    settings = app.config["SETTINGS"]
    if settings.image_service == "imagekit":
        return ImageKitStore.from_settings(settings)
    return LocalImageStore(Path(app.instance_path) / "images")


def init_image_store(app: Flask) -> None:
    app.extensions["image_store"] = build_image_store(app)


def get_image_store(app: Flask | None = None) -> ImageStore:
    store: ImageStore = (app or current_app).extensions["image_store"]
    return store
