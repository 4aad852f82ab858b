"""Accounts in the portal: who can sign in, who is locked out, and the two things an admin
does about it: lift a lockout, and end every sign-in of an account (its sessions, remember
cookies and session-bound tokens), e.g. after a laptop was lost. Both are CSRF-checked POSTs
recorded in the log with the admin who did them."""

from __future__ import annotations

import logging
import uuid

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm

from portal.appcontext import db_session
from portal.blueprints.admin.blueprint import bp
from portal.extensions import db
from portal.models import User
from portal.services.accounts.sessions import end_all_sign_ins
from portal.services.accounts.users import is_locked, list_users, unlock

log = logging.getLogger("portal.admin.users")


def _user_or_404(user_id: str) -> User:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        abort(404, "No such user.")
    user = db.session.get(User, key)
    if user is None:
        abort(404, "No such user.")
    return user


@bp.get("/users")
def users() -> ResponseReturnValue:
    """Every account with its roles and lockout state."""
    rows = [(user, is_locked(user)) for user in list_users(db_session())]
    return render_template("admin/users.html", rows=rows, form=FlaskForm())


@bp.post("/users/<user_id>/unlock")
def unlock_user(user_id: str) -> ResponseReturnValue:
    if not FlaskForm().validate_on_submit():
        abort(400, "The form could not be accepted.")
    user = _user_or_404(user_id)
    unlock(db_session(), user)
    db.session.commit()
    log.info("admin.account_unlocked", extra={"user_id": str(user.id), "by": str(current_user.id)})
    flash(f"{user.email} can sign in again.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<user_id>/sign-out")
def sign_out_user(user_id: str) -> ResponseReturnValue:
    if not FlaskForm().validate_on_submit():
        abort(400, "The form could not be accepted.")
    user = _user_or_404(user_id)
    end_all_sign_ins(db_session(), user, "admin")
    db.session.commit()
    log.info("admin.signed_out_user", extra={"user_id": str(user.id), "by": str(current_user.id)})
    flash(f"Every sign-in of {user.email} has ended.", "success")
    return redirect(url_for("admin.users"))
