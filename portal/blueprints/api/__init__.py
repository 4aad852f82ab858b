"""The JSON API under /api/v2 (see `blueprint.py`): importing the package registers every route
module on `bp`; add a new route module to the import line below."""

from __future__ import annotations

from portal.blueprints.api import auth, campaigns, cli_auth, openapi
from portal.blueprints.api.blueprint import bp, users_bp

__all__ = ["auth", "bp", "campaigns", "cli_auth", "openapi", "users_bp"]
