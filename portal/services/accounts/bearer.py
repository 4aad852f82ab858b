"""One check for every bearer credential: an opaque `cp_` API token or a JWT.

The JSON API, the sign-out endpoint and the Phoenix socket all authenticate through
`resolve_bearer`, so a token is accepted (or refused) the same way wherever it is presented.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import User
from portal.services.accounts.jwt_tokens import VerifiedJwt, verify_jwt
from portal.services.accounts.tokens import TOKEN_PREFIX, lookup_token


@dataclass(frozen=True)
class Bearer:
    """Who presented the credential, and which credential it was: `token_id` for an API
    token (revoked by id), `jwt` for a JWT (signed out by its jti)."""

    user: User
    kind: Literal["api_token", "jwt"]
    token_id: uuid.UUID | None = None
    jwt: VerifiedJwt | None = None
    # An API token check may write `last_used_at`; the caller commits when it did.
    touched: bool = False

    @property
    def expires_at(self) -> datetime | None:
        return self.jwt.expires_at if self.jwt else None


def resolve_bearer(session: Session, credential: str | None, settings: Settings) -> Bearer | None:
    """The active user behind `credential`, or None for anything that must not authenticate."""
    if not credential:
        return None
    if credential.startswith(TOKEN_PREFIX):
        found = lookup_token(session, credential, settings.api_token_max_age)
        if found is None:
            return None
        return Bearer(found.user, "api_token", token_id=found.token_id, touched=found.touched)
    verified = verify_jwt(session, credential, settings)
    if verified is None:
        return None
    return Bearer(verified.user, "jwt", jwt=verified)
