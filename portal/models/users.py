"""Users, their API tokens and their portal sign-ins. Passwords and tokens are only ever stored
hashed.

A portal sign-in is a `LoginSession` row, and the id Flask-Login keeps in the session cookie and
the remember cookie is `<user id>:<session version>:<login session id>` (`User.get_id`), so the
server can end a sign-in: logging out revokes that browser's row, and raising the user's
`session_version` (sign out everywhere, a password change, deactivation) ends them all, copied
cookies included (docs/security.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, TimestampMixin, utcnow, uuid_pk


class User(UserMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.Index("uq_users_email_lower", sa.func.lower(sa.text("email")), unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(sa.String(320))
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    gamemaster: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    # Raised to end every session, remember cookie (and JWT carrying it) of this user at once.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # Account lockout: consecutive failed sign-ins, and until when the account is locked.
    failed_sign_ins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated user cannot log in
        return self.active

    def get_id(self) -> str:
        """Flask-Login's alternative id: `<user id>:<session version>:<login session id>`."""
        # `login_session_id` is set (not a column) on the object loaded for a portal sign-in.
        login_session_id = getattr(self, "login_session_id", None)
        return f"{self.id}:{self.session_version}:{login_session_id or ''}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="api")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class LoginSession(Base):
    """One portal sign-in (one browser): revoked on logout, or with all the others when the
    user's `session_version` is raised."""

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    remote_addr: Mapped[str | None] = mapped_column(sa.String(64))
