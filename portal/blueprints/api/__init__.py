"""The JSON API under /api/v2 (stub until the auth work lands)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v2")
