"""Thin HTTP layers. Each blueprint module exposes `bp`; `register_all` mounts them."""

from __future__ import annotations

from flask import Flask


def register_all(app: Flask) -> None:
    from portal.blueprints import health

    app.register_blueprint(health.bp)
