"""Users: creation with validation, and password authentication.

Emails are stored as the person typed them (people care how their address looks) but compared
case-insensitively everywhere, matching the unique index on `lower(email)`. Passwords are only
ever stored as werkzeug hashes. Functions flush but never commit: the caller owns the transaction,
so a CLI command or request can create a user and its first token atomically. The one exception
is `authenticate`, see there.

`authenticate` is the one password check of the application: the portal's /login, the API's
token endpoint and the Chi War clients' sign-in all call it, so every sign-in route gets the
account lockout and the attempt log (docs/security.md).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal.models import User, utcnow
from portal.services.accounts.sessions import end_all_sign_ins
from portal.services.infra.text_input import text_problems

log = logging.getLogger("portal.users")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 320
NAME_MAX = 200
PASSWORD_MIN = 8
# Hashing cost grows with input length; a cap keeps a 1 MiB "password" from becoming a DoS.
PASSWORD_MAX = 1024


class UserError(ValueError):
    """Input that cannot make a valid user. `field` names the offending input (None: general),
    so the API and forms can attach the message to the right field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def errors(self) -> dict[str, list[str]]:
        """The `{"field": ["message"]}` shape the JSON API returns."""
        return {self.field or "base": [self.message]}


def normalize_email(email: str) -> str:
    """Surrounding whitespace is never meaningful in an address; case is kept as typed."""
    return (email or "").strip()


def validate_email(email: str) -> str:
    email = normalize_email(email)
    if not email:
        raise UserError("email is required", "email")
    if len(email) > EMAIL_MAX:
        raise UserError(f"email must be at most {EMAIL_MAX} characters", "email")
    if not EMAIL_RE.match(email):
        raise UserError(f"{email!r} is not a valid email address", "email")
    return email


def validate_name(name: str) -> str:
    # Checked as given: strip() would quietly drop a trailing C1 control such as U+0085.
    problems = text_problems(name or "", visible=True)
    name = (name or "").strip()
    if not name:
        raise UserError("name is required", "name")
    if len(name) > NAME_MAX:
        raise UserError(f"name must be at most {NAME_MAX} characters", "name")
    if problems:
        raise UserError(f"name {problems[0]}", "name")
    return name


def validate_password(password: str) -> str:
    if not isinstance(password, str):
        raise UserError("password must be a string", "password")
    if len(password) < PASSWORD_MIN:
        raise UserError(f"password must be at least {PASSWORD_MIN} characters", "password")
    if len(password) > PASSWORD_MAX:
        raise UserError(f"password must be at most {PASSWORD_MAX} characters", "password")
    return password


def find_by_email(session: Session, email: str) -> User | None:
    """The user with this address, whatever its case."""
    email = normalize_email(email)
    if not email:
        return None
    stmt = sa.select(User).where(sa.func.lower(User.email) == email.lower())
    return session.scalars(stmt).first()


def set_password(session: Session, user: User, password: str) -> None:
    """Replace the user's password (validated, stored hashed) and end every sign-in of the
    user: whoever knew the old password may hold a session, cookie or token from it."""
    user.password_hash = generate_password_hash(validate_password(password))
    session.flush()
    end_all_sign_ins(session, user, "password_changed")


def set_active(session: Session, user: User, active: bool) -> None:
    """Activate or deactivate a user; deactivating also ends every sign-in of the user."""
    user.active = bool(active)
    session.flush()
    if not active:
        end_all_sign_ins(session, user, "deactivated")
    log.info("user.active_changed", extra={"user_id": str(user.id), "active": user.active})


def create_user(
    session: Session,
    email: str,
    name: str,
    password: str | None,
    *,
    admin: bool = False,
    gamemaster: bool = False,
) -> User:
    """Validate and add a user; flush so the id is known and a duplicate surfaces here.

    `password=None` makes an account that cannot log in (e.g. the template owner). Raises
    UserError for bad input, leaving the session as it was."""
    email = validate_email(email)
    name = validate_name(name)
    password_hash = (
        None if password is None else generate_password_hash(validate_password(password))
    )
    if find_by_email(session, email) is not None:
        raise UserError(f"email {email!r} is already taken", "email")
    user = User(
        email=email,
        name=name,
        password_hash=password_hash,
        admin=bool(admin),
        gamemaster=bool(gamemaster),
        active=True,
    )
    try:
        _add_and_flush(session, user)
    except IntegrityError:
        raise UserError(f"email {email!r} is already taken", "email") from None
    log.info(
        "user.created",
        extra={"user_id": str(user.id), "admin": user.admin, "gamemaster": user.gamemaster},
    )
    return user


def _add_and_flush(session: Session, user: User) -> None:
    """On PostgreSQL inside a savepoint, so losing a race with a concurrent insert of the same
    address becomes a UserError without poisoning the caller's transaction. Not on SQLite:
    pysqlite's implicit transactions make an outermost SAVEPOINT commit on RELEASE, which would
    break the caller's atomicity; SQLite serializes writers, so that race is rarely reachable
    and at worst the caller has to roll back, which it does on any error anyway."""
    if session.get_bind().dialect.name == "postgresql":
        with session.begin_nested():
            session.add(user)
            session.flush()
    else:
        session.add(user)
        session.flush()


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    """A hash to check against when there is no user, so an unknown address costs as much
    time as a wrong password and response timing does not reveal which accounts exist."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


@dataclass(frozen=True)
class LockoutPolicy:
    """`threshold` consecutive failed sign-ins lock an account for `duration`; 0: never."""

    threshold: int = 10
    duration: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Any) -> LockoutPolicy:
        """From `Settings` (LOCKOUT_THRESHOLD, LOCKOUT_MINUTES)."""
        return cls(settings.lockout_threshold, timedelta(minutes=settings.lockout_minutes))


def is_locked(user: User) -> bool:
    """Whether the account is locked out now."""
    return user.locked_until is not None and user.locked_until > utcnow()


def unlock(session: Session, user: User) -> None:
    """Lift a lockout (an admin's action in the portal); the failure count starts over."""
    user.locked_until = None
    user.failed_sign_ins = 0
    session.flush()
    log.info("auth.account_unlocked", extra={"user_id": str(user.id)})


def _attempt(outcome: str, email: str, via: str, remote_addr: str | None, **extra: Any) -> None:
    """One log line per sign-in attempt. Never the password."""
    fields = {"email": email[:320], "via": via, "remote_addr": remote_addr, **extra}
    if outcome == "ok":
        log.info("auth.sign_in", extra=fields)
    else:
        log.warning("auth.sign_in_failed", extra={**fields, "reason": outcome})


def authenticate(
    session: Session,
    email: object,
    password: object,
    *,
    policy: LockoutPolicy | None = None,
    via: str = "portal",
    remote_addr: str | None = None,
) -> User | None:
    """The active user with this email and password, or None. Never says why it failed (the
    log does: unknown, wrong_password, locked, inactive).

    Lockout: `policy.threshold` consecutive wrong passwords lock the account for
    `policy.duration`; while locked even the right password is refused, and the refusals do not
    extend the lock. A successful sign-in resets the count.

    Commits: the failure count must outlive the caller's 401 (which rolls the request back),
    and a sign-in is the first thing its request does, so nothing else is pending."""
    if not isinstance(email, str) or not isinstance(password, str):
        return None
    policy = policy or LockoutPolicy()
    shown = normalize_email(email)
    user = find_by_email(session, email) if len(email) <= EMAIL_MAX else None
    candidate = password[:PASSWORD_MAX]
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), candidate)
        _attempt("unknown", shown, via, remote_addr)
        return None
    ok = check_password_hash(user.password_hash, candidate) and len(password) <= PASSWORD_MAX
    user_id = str(user.id)
    if is_locked(user):
        _attempt("locked", shown, via, remote_addr, user_id=user_id)
        return None
    if not ok:
        _record_failure(session, user, policy)
        _attempt("wrong_password", shown, via, remote_addr, user_id=user_id)
        return None
    if not user.active:
        _attempt("inactive", shown, via, remote_addr, user_id=user_id)
        return None
    if user.failed_sign_ins or user.locked_until is not None:
        user.failed_sign_ins = 0
        user.locked_until = None
        session.commit()
    _attempt("ok", shown, via, remote_addr, user_id=user_id)
    return user


def _record_failure(session: Session, user: User, policy: LockoutPolicy) -> None:
    """Count a wrong password (atomically: parallel attempts each count) and lock the account
    when the count reaches the threshold; the count then starts over for after the lock."""
    session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(failed_sign_ins=User.failed_sign_ins + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["failed_sign_ins"])
    if policy.threshold and user.failed_sign_ins >= policy.threshold:
        user.locked_until = utcnow() + policy.duration
        user.failed_sign_ins = 0
        log.warning(
            "auth.account_locked",
            extra={
                "user_id": str(user.id),
                "minutes": round(policy.duration.total_seconds() / 60),
            },
        )
    session.commit()


def list_users(session: Session, limit: int = 500) -> list[User]:
    """Users for the portal's account list: locked accounts first, then by email."""
    stmt = (
        sa.select(User)
        .order_by(User.locked_until.is_(None), sa.func.lower(User.email))
        .limit(limit)
    )
    return list(session.scalars(stmt))
