"""Thin HTTP layers. Each blueprint module (or package) exposes `bp`; `register_all` mounts them."""

from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    from portal.blueprints import admin, api, auth, health, images

    for module in (health, auth, api, admin, images):
        app.register_blueprint(module.bp)
