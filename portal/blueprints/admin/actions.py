"""The quick actions: replenish now, clean up, resize a pool, retire stale campaigns, and the
demand sizing settings.

Each is a POSTed WTForm (CSRF-checked by CSRFProtect before the view runs). The work is done
by `portal.services.pool.actions`; this layer validates the form, records the action with the
admin who ran it, tells every open dashboard (`pool_update`) and answers in the caller's terms:
JSON for the dashboard's script (which shows the result without a reload), a flash message and
a redirect to the dashboard for a plain form post.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, jsonify, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm

from portal.appcontext import db_session
from portal.blueprints.admin.blueprint import bp
from portal.blueprints.admin.forms import (
    CleanupForm,
    DemandSizingForm,
    PoolSwitchesForm,
    RefillCapacityForm,
    ReplenishForm,
    ResizeForm,
    RetireStaleForm,
)
from portal.blueprints.admin.socket import broadcast_pool_update, current_payload
from portal.blueprints.errors import wants_json
from portal.extensions import db
from portal.services.infra.queue import get_redis
from portal.services.pool import actions as admin_actions
from portal.services.pool.actions import ActionResult


def _form_errors(form: FlaskForm) -> dict[str, list[str]]:
    return {
        name.split("-", 1)[-1]: [str(e) for e in errors]
        for name, errors in form.errors.items()
        if name.split("-", 1)[-1] != "csrf_token"
    }


def _invalid(form: FlaskForm, action: str) -> ResponseReturnValue:
    errors = _form_errors(form)
    message = "; ".join(e for messages in errors.values() for e in messages) or "Invalid form."
    if wants_json():
        return jsonify({"action": action, "ok": False, "message": message, "errors": errors}), 400
    flash(f"{action.replace('_', ' ').capitalize()}: {message}", "error")
    return redirect(url_for("admin.index") + "#actions")


def _done(outcome: ActionResult) -> ResponseReturnValue:
    """Record, broadcast and answer."""
    admin = admin_actions.admin_of(db_session(), current_user.id)
    admin_actions.record_action(db_session(), admin, outcome)
    payload: dict[str, Any] | None
    try:
        payload = current_payload()
    except Exception:
        db.session.rollback()
        payload = None
    if payload is not None:
        broadcast_pool_update(payload)
    if wants_json():
        return jsonify({**outcome.as_dict(), "pool": payload}), 200 if outcome.ok else 422
    flash(outcome.message, "success" if outcome.ok else "error")
    return redirect(url_for("admin.index") + "#actions")


@bp.post("/actions/replenish")
def replenish() -> ResponseReturnValue:
    form = ReplenishForm(prefix="replenish")
    if not form.validate_on_submit():
        return _invalid(form, "replenish")
    return _done(admin_actions.replenish_now(get_redis(), form.scope.data or "master"))


@bp.post("/actions/cleanup")
def cleanup() -> ResponseReturnValue:
    form = CleanupForm(prefix="cleanup")
    if not form.validate_on_submit():
        return _invalid(form, "cleanup")
    settings = current_app.config["SETTINGS"]
    return _done(admin_actions.cleanup_now(db_session(), settings, get_redis()))


@bp.post("/actions/resize")
def resize() -> ResponseReturnValue:
    form = ResizeForm(prefix="resize")
    if not form.validate_on_submit():
        return _invalid(form, "resize")
    admin = admin_actions.admin_of(db_session(), current_user.id)
    outcome = admin_actions.resize_pool(
        db_session(), get_redis(), admin, form.pool_type.data or "", form.target.data
    )
    return _done(outcome)


@bp.post("/actions/retire-stale")
def retire_stale() -> ResponseReturnValue:
    form = RetireStaleForm(prefix="retire")
    if not form.validate_on_submit():
        return _invalid(form, "retire_stale")
    return _done(admin_actions.retire_stale(db_session()))


@bp.post("/actions/demand-sizing")
def demand_sizing() -> ResponseReturnValue:
    form = DemandSizingForm(prefix="demand")
    if not form.validate_on_submit():
        return _invalid(form, "demand_sizing")
    admin = admin_actions.admin_of(db_session(), current_user.id)
    values: dict[str, object] = {
        "demand_sizing": int(bool(form.enabled.data)),
        "demand_min": form.minimum.data,
        "demand_max": form.maximum.data,
        "demand_half_life_min": form.half_life.data,
        "demand_service_level": form.service_level.data,
        "demand_history_days": form.history_days.data,
    }
    settings = current_app.config["SETTINGS"]
    return _done(
        admin_actions.configure_demand_sizing(db_session(), settings, get_redis(), admin, values)
    )


@bp.post("/actions/switches")
def switches() -> ResponseReturnValue:
    form = PoolSwitchesForm(prefix="switches")
    if not form.validate_on_submit():
        return _invalid(form, "switches")
    admin = admin_actions.admin_of(db_session(), current_user.id)
    settings = current_app.config["SETTINGS"]
    return _done(
        admin_actions.set_pool_switches(
            db_session(),
            settings,
            get_redis(),
            admin,
            assignment=form.assignment.data == "on",
            refills=form.refills.data == "on",
            reason=form.reason.data,
        )
    )


@bp.post("/actions/refill-capacity")
def refill_capacity() -> ResponseReturnValue:
    form = RefillCapacityForm(prefix="capacity")
    if not form.validate_on_submit():
        return _invalid(form, "refill_capacity")
    admin = admin_actions.admin_of(db_session(), current_user.id)
    values: dict[str, object] = {
        "max_parallel_builds": form.max_parallel.data,
        "build_batch_size": form.batch_size.data,
    }
    settings = current_app.config["SETTINGS"]
    return _done(
        admin_actions.set_refill_capacity(db_session(), settings, get_redis(), admin, values)
    )
