"""Users: creation with validation, and password authentication.

Emails are stored as the person typed them (people care how their address looks) but compared
case-insensitively everywhere, matching the unique index on `lower(email)`. Passwords are only
ever stored as werkzeug hashes. Functions flush but never commit: the caller owns the transaction,
so a CLI command or request can create a user and its first token atomically.
"""

from __future__ import annotations

import logging
import re
import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal.models import User

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
    name = (name or "").strip()
    if not name:
        raise UserError("name is required", "name")
    if len(name) > NAME_MAX:
        raise UserError(f"name must be at most {NAME_MAX} characters", "name")
    if any(ord(ch) < 32 for ch in name):
        raise UserError("name must not contain control characters", "name")
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


def set_password(user: User, password: str) -> None:
    """Replace the user's password (validated, stored hashed)."""
    user.password_hash = generate_password_hash(validate_password(password))


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


def authenticate(session: Session, email: object, password: object) -> User | None:
    """The active user with this email and password, or None. Never says why it failed.

    Takes any value (a JSON body's fields are not always strings) and refuses what is not a
    string, so callers need not check first."""
    if not isinstance(email, str) or not isinstance(password, str):
        return None
    user = find_by_email(session, email) if len(email) <= EMAIL_MAX else None
    candidate = password[:PASSWORD_MAX]
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), candidate)
        return None
    ok = check_password_hash(user.password_hash, candidate) and len(password) <= PASSWORD_MAX
    if not ok or not user.active:
        return None
    return user
