"""Placeholder; replaced by the image store implementation."""

from flask import Flask


def init_image_store(app: Flask) -> None:
    app.extensions.setdefault("image_store", None)
