"""The admin portal under /admin: admins only, secure by default.

Every view of this blueprint is guarded by `before_request`, so a page added later cannot be
left open by forgetting a decorator. Anonymous visitors are sent to the login page (or get a
JSON 401 under /admin/api); signed-in users who are not admins get 403. Other blueprints mounted
under /admin (rq-dashboard) protect themselves with `admin_required` / `require_admin`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.blueprints.errors import wants_json
from portal.extensions import db, login_manager
from portal.models import (
    Campaign,
    Character,
    Faction,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

F = TypeVar("F", bound=Callable[..., Any])


def require_admin() -> ResponseReturnValue | None:
    """None when the current user is an active admin; otherwise the response to send."""
    if not current_user.is_authenticated:
        if wants_json():
            abort(401, "sign in to the portal first")
        return login_manager.unauthorized()
    if not current_user.admin:
        abort(403, "The portal is for administrators only.")
    return None


def admin_required(view: F) -> F:
    """The same guard as a decorator, for admin views outside this blueprint."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        denied = require_admin()
        if denied is not None:
            return denied
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


bp.before_request(require_admin)


def template_counts() -> tuple[Campaign | None, dict[str, int]]:
    """The master template campaign and how much content it holds, in one round trip."""
    master = db.session.scalars(
        sa.select(Campaign).where(Campaign.is_master_template.is_(True)).limit(1)
    ).first()
    if master is None:
        return None, {}

    def count(model: Any, *where: Any) -> sa.ScalarSelect[int]:
        return (
            sa.select(sa.func.count())
            .select_from(model)
            .where(model.campaign_id == master.id, *where)
            .scalar_subquery()
        )

    labels = ("schticks", "weapons", "factions", "junctures", "characters", "vehicles")
    models = (Schtick, Weapon, Faction, Juncture, Character, Vehicle)
    row = db.session.execute(
        sa.select(*(count(m).label(name) for name, m in zip(labels, models, strict=True)))
    ).one()
    return master, dict(row._mapping)


@bp.get("/")
def index() -> ResponseReturnValue:
    """A placeholder home for admins until the pool dashboard lands."""
    master, counts = template_counts()
    return render_template("admin/index.html", master=master, counts=counts)
