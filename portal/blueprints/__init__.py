"""Thin HTTP layers. Each blueprint module (or package) exposes `bp`; `register_all` mounts them."""

from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    from portal.blueprints import admin, api, auth, health, images, metrics, socket

    for module in (health, metrics, auth, api, admin, images, socket):
        app.register_blueprint(module.bp)
    app.register_blueprint(api.users_bp)
