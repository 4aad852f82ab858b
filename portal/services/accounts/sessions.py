"""Portal sign-ins the server can end: one `LoginSession` row per browser sign-in.

Flask-Login keeps `User.get_id()` in the session cookie and in the remember cookie; that id is
`<user id>:<session version>:<login session id>`. Both cookies are signed, so they cannot be
forged, but a copied cookie stays valid for as long as the server accepts its id. This module
decides that on every request:

- logging out revokes the browser's own row, so its session and remember cookies (and any copy
  of them) stop working at once;
- "sign out everywhere", a password change and deactivation raise `users.session_version`,
  which ends every sign-in of the user (and every JWT that carries the version);
- a sign-in older than the remember cookie's lifetime ends too, because the remember cookie
  itself carries no date a server could check.

Functions flush, never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import LoginSession, User, utcnow

log = logging.getLogger("portal.sessions")


def start_login_session(session: Session, user: User, remote_addr: str | None = None) -> None:
    """Record a new portal sign-in for `user` and make `user.get_id()` name it."""
    record = LoginSession(user_id=user.id, remote_addr=(remote_addr or "")[:64] or None)
    session.add(record)
    session.flush()
    user.login_session_id = record.id


def parse_alternative_id(value: str) -> tuple[uuid.UUID, int, uuid.UUID] | None:
    """`<user id>:<session version>:<login session id>` or None when it is not that shape
    (a cookie from before sign-ins were recorded, or garbage)."""
    parts = (value or "").split(":")
    if len(parts) != 3:
        return None
    try:
        return uuid.UUID(parts[0]), int(parts[1]), uuid.UUID(parts[2])
    except ValueError:
        return None


def user_for_sign_in(session: Session, alternative_id: str, max_age: timedelta) -> User | None:
    """The active user a cookie's id stands for, or None when that sign-in has ended: logged
    out, signed out everywhere (older session version), older than `max_age`, or the user is
    inactive or gone. One indexed query."""
    parsed = parse_alternative_id(alternative_id)
    if parsed is None:
        return None
    user_id, version, login_session_id = parsed
    row = session.execute(
        sa.select(User, LoginSession.created_at)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(
            User.id == user_id,
            LoginSession.id == login_session_id,
            LoginSession.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    user, created_at = row
    if not user.active or user.session_version != version:
        return None
    if created_at < utcnow() - max_age:
        return None
    user.login_session_id = login_session_id
    return user


def end_login_session(session: Session, user: User) -> None:
    """Log out: revoke the sign-in `user` was loaded for (this browser only)."""
    login_session_id = getattr(user, "login_session_id", None)
    if login_session_id is None:
        return
    session.execute(
        sa.update(LoginSession)
        .where(LoginSession.id == login_session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    log.info("auth.session_ended", extra={"user_id": str(user.id)})


def end_all_sign_ins(session: Session, user: User, reason: str) -> None:
    """End every sign-in of `user`: portal sessions, remember cookies and session-version
    bearing JWTs alike. `reason` is logged (sign_out_everywhere, password_changed, ...)."""
    session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["session_version"])
    log.info("auth.signed_out_everywhere", extra={"user_id": str(user.id), "reason": reason})
