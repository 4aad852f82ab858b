"""Thin HTTP layers. Each blueprint module (or package) exposes `bp`; `register_all` mounts them."""

from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    from portal.blueprints import admin, api, auth, health, images, metrics

    for module in (health, metrics, auth, api, admin, images):
        app.register_blueprint(module.bp)
