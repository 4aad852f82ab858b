"""The admin portal under /admin (stub until the auth work lands)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
