"""JSON Web Tokens: what the Chi War clients sign in with, issued, verified and signed out here.

The main Chi War server (Phoenix with Guardian) signs HS256 tokens whose `sub` is the user's id;
this module issues and accepts the same kind, so a deployment that shares `JWT_SECRET` with it
can accept its tokens and it ours (docs/api.md, "JWT"). Claims:

* `sub`: the user's id (a UUID string), `jti`: a random id naming this one token,
* `iat` / `exp`: issued-at and expiry (JWT_LIFETIME_HOURS later), seconds since the epoch.

Verification accepts HS256 and HS512 (the two Guardian allows) with the configured secret and
nothing else (no `none`, no public-key algorithms an attacker could confuse with a secret),
requires all four claims, and refuses a token whose `jti` was signed out (`jwt_denylist`) or
whose user is unknown or deactivated.

Signing out everywhere, a password change and deactivation raise the user's session version
(`users.session_version`, docs/security.md); tokens carry it in the `ver` claim and one with an
older version is refused. A token without `ver` (the Chi War server's) counts as version 1: it
is accepted until the user first signs out everywhere.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import JWT_ALGORITHMS, Settings
from portal.models import JwtDenylist, User, utcnow
from portal.services.infra.database import rowcount

log = logging.getLogger("portal.jwt")

REQUIRED_CLAIMS = ("sub", "jti", "iat", "exp")
# Clocks of two servers sharing a secret drift a little; a token is not refused for that.
LEEWAY = timedelta(seconds=30)
# Longer than any JWT we or the Chi War server issue (theirs carry a `user` claim, ~700 bytes).
JWT_MAX_LENGTH = 8192
JTI_MAX = 64
# The user's session version when the token was issued ("sign out everywhere" raises it).
SESSION_VERSION_CLAIM = "ver"
FIRST_SESSION_VERSION = 1


@dataclass(frozen=True)
class IssuedJwt:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class VerifiedJwt:
    user: User
    jti: str
    expires_at: datetime


def issue_jwt(user: User, settings: Settings, now: datetime | None = None) -> IssuedJwt:
    """A signed token for `user`, valid for the configured lifetime. Nothing is stored: a
    JWT is checked by its signature, and only a signed-out one leaves a row behind."""
    issued = (now or utcnow()).replace(microsecond=0)
    expires = issued + settings.jwt_lifetime
    jti = str(uuid.uuid4())
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "jti": jti,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        SESSION_VERSION_CLAIM: user.session_version,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)
    log.info("jwt.issued", extra={"user_id": str(user.id), "jti": jti})
    return IssuedJwt(token=token, jti=jti, expires_at=expires)


def decode_claims(token: str, settings: Settings) -> dict[str, Any] | None:
    """The claims of a well-signed, unexpired token with every required claim, else None."""
    if not token or len(token) > JWT_MAX_LENGTH:
        return None
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=list(JWT_ALGORITHMS),
            leeway=LEEWAY,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
        )
    except jwt.PyJWTError:
        return None
    jti, sub = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not 0 < len(jti) <= JTI_MAX or not isinstance(sub, str):
        return None
    return claims


def verify_jwt(session: Session, token: str, settings: Settings) -> VerifiedJwt | None:
    """The active user a token belongs to, or None: bad signature or algorithm, expired,
    a claim missing, `sub` not a known user, user deactivated, or signed out."""
    claims = decode_claims(token, settings)
    if claims is None:
        return None
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    if session.get(JwtDenylist, claims["jti"]) is not None:
        return None
    version = claims.get(SESSION_VERSION_CLAIM, FIRST_SESSION_VERSION)
    if not isinstance(version, int) or version != user.session_version:
        return None
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    return VerifiedJwt(user=user, jti=claims["jti"], expires_at=expires_at)


def revoke_jwt(session: Session, verified: VerifiedJwt) -> None:
    """Sign one token out: its `jti` is refused until it would have expired (flush only)."""
    if session.get(JwtDenylist, verified.jti) is None:
        session.add(
            JwtDenylist(
                jti=verified.jti, user_id=verified.user.id, expires_at=verified.expires_at + LEEWAY
            )
        )
        session.flush()
    log.info("jwt.revoked", extra={"user_id": str(verified.user.id), "jti": verified.jti})


def prune_denylist(session: Session, now: datetime | None = None) -> int:
    """Delete rows of tokens that have expired anyway (flush only); returns how many."""
    result = session.execute(
        sa.delete(JwtDenylist)
        .where(JwtDenylist.expires_at < (now or utcnow()))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) or 0
