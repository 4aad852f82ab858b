"""Login and logout (stub until the auth work lands)."""

from flask import Blueprint

bp = Blueprint("auth", __name__)
