"""Device sign-in for the command-line client (`chiwar login`).

1. `start_code`: the CLI gets a fresh code and the URL of the portal page that approves it.
2. A signed-in user opens that page and approves (`approve_code`), in the browser, with CSRF.
3. The CLI polls (`poll_code`) until approved; the first poll after approval gets the user and
   a JWT, once: the code is then spent. After CLI_CODE_LIFETIME it is expired (HTTP 410).

Whoever holds the code can collect the token, so the code is 100 random bits (20 characters of
Crockford base32 in groups of four, readable when the page and the terminal are compared) and
only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import CliAuthCode, User, utcnow
from portal.services.infra.database import rowcount

log = logging.getLogger("portal.cli_auth")

CLI_CODE_LIFETIME = timedelta(minutes=10)
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_GROUPS = 5
CODE_MAX = 64


@dataclass(frozen=True)
class StartedCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class PollResult:
    status: Literal["pending", "approved", "expired"]
    user: User | None = None
    expires_at: datetime | None = None


class CliCodeError(ValueError):
    """A code that cannot be approved: unknown, expired or already approved (`reason`)."""

    def __init__(self, reason: Literal["not_found", "already_approved"]) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_code(code: str) -> str:
    """Codes are compared upper-case and without surrounding space, as a person may type one."""
    return code.strip().upper()


def _hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode("utf-8")).hexdigest()


def start_code(session: Session, now: datetime | None = None) -> StartedCode:
    """A new pending code (flush only)."""
    now = now or utcnow()
    raw = "".join(secrets.choice(ALPHABET) for _ in range(4 * CODE_GROUPS))
    code = "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
    record = CliAuthCode(code_hash=_hash(code), created_at=now, expires_at=now + CLI_CODE_LIFETIME)
    session.add(record)
    session.flush()
    return StartedCode(code=code, expires_at=record.expires_at)


def _find(session: Session, code: str, *, lock: bool = False) -> CliAuthCode | None:
    if not code.strip() or len(code) > CODE_MAX:
        return None
    stmt = sa.select(CliAuthCode).where(CliAuthCode.code_hash == _hash(code))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def pending_code(session: Session, code: str, now: datetime | None = None) -> CliAuthCode | None:
    """The code if it can still be approved (known, unexpired, not approved yet)."""
    record = _find(session, code)
    now = now or utcnow()
    if record is None or record.expires_at <= now or record.approved_at is not None:
        return None
    return record


def approve_code(session: Session, code: str, user: User, now: datetime | None = None) -> None:
    """Give the code to `user` (flush only); CliCodeError when it cannot be approved."""
    now = now or utcnow()
    record = _find(session, code, lock=True)
    if record is None or record.expires_at <= now:
        raise CliCodeError("not_found")
    if record.approved_at is not None:
        raise CliCodeError("already_approved")
    record.approved_at = now
    record.user_id = user.id
    session.flush()
    log.info("cli_auth.approved", extra={"user_id": str(user.id), "code_id": str(record.id)})


def poll_code(session: Session, code: str, now: datetime | None = None) -> PollResult:
    """Where the code stands. `approved` (with the user) is answered once; the code is spent
    by it, so a later poll, like an unknown or outdated code, says `expired` (flush only)."""
    now = now or utcnow()
    record = _find(session, code, lock=True)
    if record is None or record.collected_at is not None or record.expires_at <= now:
        return PollResult("expired")
    if record.approved_at is None or record.user_id is None:
        return PollResult("pending", expires_at=record.expires_at)
    user = session.get(User, record.user_id)
    if user is None or not user.active:
        return PollResult("expired")
    record.collected_at = now
    session.flush()
    log.info("cli_auth.collected", extra={"user_id": str(user.id), "code_id": str(record.id)})
    return PollResult("approved", user=user)


def prune_codes(session: Session, now: datetime | None = None) -> int:
    """Delete codes past their expiry (flush only); returns how many."""
    result = session.execute(
        sa.delete(CliAuthCode)
        .where(CliAuthCode.expires_at < (now or utcnow()))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) or 0
