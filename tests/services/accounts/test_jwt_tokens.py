"""JWTs at the service layer: what `issue_jwt` signs, what `verify_jwt` accepts (the size, claim
and clock limits a client meets), and how a signed-out token stays refused until the clean-up
may forget it."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from flask import Flask

from portal.config import Settings
from portal.extensions import db
from portal.models import JwtDenylist, User, utcnow
from portal.services.accounts.jwt_tokens import (
    JTI_MAX,
    JWT_MAX_LENGTH,
    LEEWAY,
    issue_jwt,
    prune_denylist,
    revoke_jwt,
    verify_jwt,
)
from portal.services.accounts.users import create_user


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.config["SETTINGS"]


@pytest.fixture
def gm(app: Flask) -> User:
    user = create_user(db.session, "gm@example.com", "Gina Master", None, gamemaster=True)
    db.session.commit()
    return user


def signed(settings: Settings, user: User, **claims: Any) -> str:
    """A token signed with the deployment's secret: ours, unless `claims` change it."""
    now = int(utcnow().timestamp())
    body = {
        "sub": str(user.id),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 3600,
        "ver": user.session_version,
    }
    body.update(claims)
    return jwt.encode(body, settings.jwt_secret, algorithm="HS256")


def test_an_issued_token_names_the_user_and_expires_after_the_lifetime(settings, gm) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, 987654, tzinfo=UTC)
    issued = issue_jwt(gm, settings, now=now)
    whole_second = now.replace(microsecond=0)
    assert issued.expires_at == whole_second + settings.jwt_lifetime
    claims = jwt.decode(
        issued.token, settings.jwt_secret, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims["sub"] == str(gm.id)
    assert claims["jti"] == issued.jti and uuid.UUID(issued.jti)
    assert claims["iat"] == int(whole_second.timestamp())
    assert claims["exp"] == int(issued.expires_at.timestamp())
    assert claims["ver"] == gm.session_version


def test_every_issued_token_has_its_own_id(settings, gm) -> None:
    assert issue_jwt(gm, settings).jti != issue_jwt(gm, settings).jti


def test_a_verified_token_tells_the_user_and_when_it_expires(settings, gm) -> None:
    issued = issue_jwt(gm, settings)
    verified = verify_jwt(db.session, issued.token, settings)
    assert verified is not None
    assert verified.user is gm and verified.jti == issued.jti
    assert verified.expires_at == issued.expires_at
    assert verified.expires_at.tzinfo is not None


def test_a_token_up_to_the_size_limit_is_accepted_and_a_longer_one_is_not(settings, gm) -> None:
    def padded(size: int) -> str:
        return signed(settings, gm, jti="fixed-jti", pad="p" * size)

    base = len(padded(0))
    # Each padding byte adds about 4/3 of a character; find the token of exactly the limit.
    sizes = range((JWT_MAX_LENGTH - base) * 3 // 4 - 4, (JWT_MAX_LENGTH - base) * 3 // 4 + 4)
    at_limit = next(t for t in map(padded, sizes) if len(t) == JWT_MAX_LENGTH)
    assert verify_jwt(db.session, at_limit, settings) is not None
    over = next(t for t in map(padded, sizes) if len(t) > JWT_MAX_LENGTH)
    assert verify_jwt(db.session, over, settings) is None


@pytest.mark.parametrize("token", ["", "not.a.token"])
def test_an_empty_or_garbled_token_is_refused(settings, gm, token: str) -> None:
    assert verify_jwt(db.session, token, settings) is None


@pytest.mark.parametrize(
    ("jti", "accepted"),
    [("j", True), ("j" * JTI_MAX, True), ("", False), ("j" * (JTI_MAX + 1), False)],
)
def test_the_token_id_must_fit_the_denylist(settings, gm, jti: str, accepted: bool) -> None:
    verified = verify_jwt(db.session, signed(settings, gm, jti=jti), settings)
    assert (verified is not None) is accepted


@pytest.mark.parametrize("claim", ["sub", "jti", "iat", "exp"])
def test_a_token_without_a_required_claim_is_refused(settings, gm, claim: str) -> None:
    body = jwt.decode(signed(settings, gm), settings.jwt_secret, algorithms=["HS256"])
    del body[claim]
    token = jwt.encode(body, settings.jwt_secret, algorithm="HS256")
    assert verify_jwt(db.session, token, settings) is None


def test_tokens_are_signed_with_the_configured_algorithm(settings, gm) -> None:
    hs512 = dataclasses.replace(settings, jwt_algorithm="HS512", jwt_secret="s" * 64)
    token = issue_jwt(gm, hs512).token
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert verify_jwt(db.session, token, hs512) is not None
    assert jwt.get_unverified_header(issue_jwt(gm, settings).token)["alg"] == "HS256"


def test_a_slightly_late_clock_is_tolerated(settings, gm) -> None:
    now = int(utcnow().timestamp())
    just_expired = signed(settings, gm, iat=now - 3600, exp=now - 10)
    assert verify_jwt(db.session, just_expired, settings) is not None
    long_expired = signed(settings, gm, iat=now - 3600, exp=now - 10 - int(LEEWAY.total_seconds()))
    assert verify_jwt(db.session, long_expired, settings) is None


@pytest.mark.parametrize("version", ["1", 1.0, None])
def test_a_session_version_that_is_not_a_whole_number_is_refused(settings, gm, version) -> None:
    assert gm.session_version == 1
    assert verify_jwt(db.session, signed(settings, gm, ver=version), settings) is None


def test_a_token_of_a_deactivated_user_is_refused(settings, gm) -> None:
    token = issue_jwt(gm, settings).token
    gm.active = False
    db.session.commit()
    assert verify_jwt(db.session, token, settings) is None


def test_signing_a_token_out_twice_is_harmless(settings, gm) -> None:
    issued = issue_jwt(gm, settings)
    verified = verify_jwt(db.session, issued.token, settings)
    assert verified is not None
    revoke_jwt(db.session, verified)
    revoke_jwt(db.session, verified)
    db.session.commit()
    rows = db.session.scalars(sa.select(JwtDenylist)).all()
    assert [(row.jti, row.user_id) for row in rows] == [(issued.jti, gm.id)]
    assert verify_jwt(db.session, issued.token, settings) is None


def test_a_signed_out_token_stays_refused_while_the_clock_leeway_would_accept_it(
    settings, gm
) -> None:
    now = int(utcnow().timestamp())
    token = signed(settings, gm, iat=now - 3600, exp=now - 10)  # expired, within the leeway
    verified = verify_jwt(db.session, token, settings)
    assert verified is not None
    revoke_jwt(db.session, verified)
    db.session.commit()
    prune_denylist(db.session)  # the clean-up runs right after
    db.session.commit()
    assert verify_jwt(db.session, token, settings) is None


def test_the_clean_up_forgets_only_signed_out_tokens_past_their_expiry(settings, gm) -> None:
    now = utcnow()
    for jti, expires_at in (("old", now - timedelta(hours=1)), ("live", now + timedelta(hours=1))):
        db.session.add(JwtDenylist(jti=jti, user_id=gm.id, expires_at=expires_at))
    db.session.commit()

    def kept() -> list[str]:
        db.session.expire_all()
        return sorted(db.session.scalars(sa.select(JwtDenylist.jti)))

    assert prune_denylist(db.session, now - timedelta(hours=2)) == 0
    assert prune_denylist(db.session, now - timedelta(hours=1)) == 0  # expires exactly then
    assert kept() == ["live", "old"]
    assert prune_denylist(db.session, now) == 1
    db.session.commit()
    assert kept() == ["live"]
    assert prune_denylist(db.session) == 0
    assert prune_denylist(db.session, now + timedelta(hours=2)) == 1
    db.session.commit()
    assert kept() == []
