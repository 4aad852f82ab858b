"""API bearer tokens: issued once, stored only as a SHA-256 hash, revocable.

A token is `cp_` + 43 url-safe characters (256 random bits). The prefix makes a leaked token
recognizable to secret scanners and lets us refuse foreign strings without a query. SHA-256
(not a slow password hash) is right here: the token carries full entropy, so brute force is
hopeless anyway, and the lookup sits on the hot path of every API request.

`user_for_token` is on that hot path, so it is one indexed SELECT, and it writes `last_used_at`
at most once a minute per token instead of on every request. A token expires
`API_TOKEN_TTL_DAYS` after it was issued (365 by default; 0 turns expiry off): a leaked token
does not stay good forever, and a client simply asks for a new one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.models import ApiToken, User, utcnow
from portal.services.infra.database import rowcount

log = logging.getLogger("portal.tokens")
# Log fields say `api_key_id`, not `token_id`: the JSON log formatter masks any field whose
# name contains "token", and the id of a token is not a secret worth hiding.

TOKEN_PREFIX = "cp_"
TOKEN_BYTES = 32
TOKEN_NAME_MAX = 200
# Longer than any token we issue; anything bigger is not ours and is refused before hashing.
TOKEN_MAX_LENGTH = 128
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token operation that cannot be done (unknown token id, bad name)."""


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, user: User, name: str = "api") -> str:
    """Create a token for `user` and return it. This is the only time the token exists in
    clear text: show it to the user now, it cannot be recovered later. Flushes, no commit."""
    name = (name or "").strip()
    if not name:
        raise TokenError("token name is required")
    if len(name) > TOKEN_NAME_MAX:
        raise TokenError(f"token name must be at most {TOKEN_NAME_MAX} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    record = ApiToken(user_id=user.id, token_hash=hash_token(token), name=name)
    session.add(record)
    session.flush()
    log.info("token.issued", extra={"user_id": str(user.id), "api_key_id": str(record.id)})
    return token


@dataclass(frozen=True)
class TokenLookup:
    """The result of checking a token: whose it is, which record, and whether the check
    wrote `last_used_at` (so a caller outside a write transaction knows to commit)."""

    user: User
    token_id: uuid.UUID
    touched: bool


def lookup_token(
    session: Session, token: str | None, max_age: timedelta | None = None
) -> TokenLookup | None:
    """Check a presented token; None for anything that must not authenticate: unknown,
    revoked, older than `max_age` (expired; None or zero: tokens do not expire), or owned by
    an inactive user."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_MAX_LENGTH:
        return None
    now = utcnow()
    stmt = (
        sa.select(User, ApiToken.id, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
    if max_age:
        stmt = stmt.where(ApiToken.created_at > now - max_age)
    row = session.execute(stmt).first()
    if row is None:
        return None
    user, token_id, last_used_at = row
    if not user.active:
        return None
    cutoff = now - LAST_USED_RESOLUTION
    touched = False
    if last_used_at is None or last_used_at < cutoff:
        # Conditional, so concurrent requests with the same token write it once.
        result = session.execute(
            sa.update(ApiToken)
            .where(
                ApiToken.id == token_id,
                sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        touched = rowcount(result) > 0
        if touched:
            # Keep an already-loaded ApiToken object honest without another SELECT.
            loaded = session.identity_map.get(session.identity_key(ApiToken, token_id))
            if loaded is not None:
                set_committed_value(loaded, "last_used_at", now)
    return TokenLookup(user=user, token_id=token_id, touched=touched)


def user_for_token(
    session: Session, token: str | None, max_age: timedelta | None = None
) -> User | None:
    """The active owner of a live token, or None (unknown, revoked, expired, inactive user)."""
    found = lookup_token(session, token, max_age)
    return found.user if found else None


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise TokenError(f"{value!r} is not a token id") from None


def revoke_token(session: Session, token_id: uuid.UUID | str) -> None:
    """Revoke one token by id (idempotent for an already revoked token)."""
    record = session.get(ApiToken, _as_uuid(token_id))
    if record is None:
        raise TokenError(f"no token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.flush()
        log.info(
            "token.revoked", extra={"user_id": str(record.user_id), "api_key_id": str(record.id)}
        )


def revoke_all(session: Session, user: User) -> int:
    """Revoke every live token of `user`; returns how many were live."""
    result = session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    count = rowcount(result) or 0
    log.info("token.revoked_all", extra={"user_id": str(user.id), "count": count})
    return count
