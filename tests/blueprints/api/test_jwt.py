"""JWTs: a token minted as the Chi War (Elixir, Guardian) server mints it is accepted; a wrong
secret, an expired, a signed-out or otherwise doctored token is a 401; ours decode with PyJWT
and the shared secret into the documented claims; and the settings are checked at start.

The Elixir server's token (shot-server-elixir lib/shot_elixir/guardian.ex and Guardian's
defaults): HS256, `sub` = the user id, `jti`, `iat`, `nbf`, `exp` (4 weeks), `iss`/`aud`
"shot_server", `typ` "access" and a `user` claim.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from flask import Flask

from portal import ConfigError
from portal.config import load_settings
from portal.extensions import db
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, AuthActions
from tests.support.databases import TestDatabases

SHARED = "a-secret-shared-with-the-chi-war-server-" + "0123456789abcdef" * 3


@pytest.fixture
def shared_app(databases: TestDatabases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    yield from app_on(databases, migrated_golden, redis_url, JWT_SECRET=SHARED)


@pytest.fixture
def gm(shared_app: Flask) -> Any:
    return AuthActions(shared_app.test_client()).create_user(
        "gm@example.com", admin=False, gamemaster=True, name="Gina Master"
    )


def elixir_token(
    user: Any, *, secret: str = SHARED, algorithm: str = "HS256", **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "aud": "shot_server",
        "iss": "shot_server",
        "typ": "access",
        "sub": str(user.id),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now - 1,
        "exp": now + 4 * 7 * 24 * 3600,
        "user": {"id": str(user.id), "email": user.email, "admin": False, "gamemaster": True},
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def current(app: Flask, token: str) -> int:
    return (
        app.test_client()
        .get("/api/v2/users/current", headers={"Authorization": f"Bearer {token}"})
        .status_code
    )


def test_a_token_of_the_elixir_server_is_accepted(shared_app: Flask, gm: Any) -> None:
    assert current(shared_app, elixir_token(gm)) == 200
    assert current(shared_app, elixir_token(gm, algorithm="HS512")) == 200


@pytest.mark.parametrize(
    "doctored",
    [
        pytest.param({"secret": "another-secret-" + "9" * 60}, id="wrong secret"),
        pytest.param({"exp": int(time.time()) - 120}, id="expired"),
        pytest.param({"jti": None}, id="no jti"),
        pytest.param({"sub": str(uuid.uuid4())}, id="unknown user"),
        pytest.param({"sub": "User:1"}, id="sub not a uuid"),
    ],
)
def test_a_doctored_token_is_a_401(shared_app: Flask, gm: Any, doctored: dict) -> None:
    assert current(shared_app, elixir_token(gm, **doctored)) == 401


def test_unsigned_and_foreign_algorithms_are_refused(shared_app: Flask, gm: Any) -> None:
    now = int(time.time())
    claims = {"sub": str(gm.id), "jti": "x", "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert current(shared_app, unsigned) == 401
    assert current(shared_app, jwt.encode(claims, SHARED, algorithm="HS384")) == 401


def test_our_token_carries_the_documented_claims(shared_app: Flask, gm: Any) -> None:
    response = shared_app.test_client().post(
        "/users/sign_in", json={"user": {"email": "gm@example.com", "password": DEFAULT_PASSWORD}}
    )
    token = response.get_json()["token"]
    assert response.headers["Authorization"] == f"Bearer {token}"
    claims = jwt.decode(token, SHARED, algorithms=["HS256"])  # what the Elixir server does
    assert set(claims) == {"sub", "jti", "iat", "exp", "ver"}
    assert claims["ver"] == gm.session_version
    assert claims["sub"] == str(gm.id)
    assert claims["exp"] - claims["iat"] == 168 * 3600  # JWT_LIFETIME_HOURS
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_signed_out_tokens_are_refused_and_others_are_not(shared_app: Flask, gm: Any) -> None:
    client = shared_app.test_client()
    first = elixir_token(gm)
    second = elixir_token(gm)
    signed_out = client.delete("/users/sign_out", headers={"Authorization": f"Bearer {first}"})
    assert signed_out.status_code == 200
    assert signed_out.get_json() == {"message": "Signed out successfully"}
    assert current(shared_app, first) == 401
    assert current(shared_app, second) == 200
    assert client.delete("/users/sign_out").status_code == 401


def test_signing_out_everywhere_ends_every_jwt(shared_app: Flask, gm: Any) -> None:
    """The security work's session version: ours carry it (`ver`), the Elixir server's count as
    version 1; raising it refuses both."""
    from portal.services.accounts.jwt_tokens import issue_jwt
    from portal.services.accounts.sessions import end_all_sign_ins

    ours = issue_jwt(gm, shared_app.config["SETTINGS"]).token
    theirs = elixir_token(gm)
    assert current(shared_app, ours) == 200 and current(shared_app, theirs) == 200
    end_all_sign_ins(db.session, gm, "sign_out_everywhere")
    db.session.commit()
    assert current(shared_app, ours) == 401 and current(shared_app, theirs) == 401
    assert current(shared_app, issue_jwt(gm, shared_app.config["SETTINGS"]).token) == 200


def test_a_deactivated_user_is_refused(shared_app: Flask, gm: Any) -> None:
    token = elixir_token(gm)
    gm.active = False
    db.session.commit()
    assert current(shared_app, token) == 401


def test_api_tokens_keep_working_beside_jwts(shared_app: Flask, gm: Any) -> None:
    api_token = AuthActions(shared_app.test_client()).token_for(gm)
    assert current(shared_app, api_token) == 200


def test_jwt_settings_are_checked(tmp_path) -> None:
    base = {"SECRET_KEY": "x" * 32}
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings({**base, "JWT_SECRET": "short"}, tmp_path)
    with pytest.raises(ConfigError, match="JWT_ALGORITHM"):
        load_settings({**base, "JWT_ALGORITHM": "RS256"}, tmp_path)
    with pytest.raises(ConfigError, match="HS512"):
        load_settings({**base, "JWT_ALGORITHM": "HS512", "JWT_SECRET": "y" * 40}, tmp_path)
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings({**base, "CORS_ORIGINS": "https://chiwar.example/path"}, tmp_path)
    settings = load_settings({**base, "JWT_ALGORITHM": "hs512"}, tmp_path)
    assert settings.jwt_algorithm == "HS512" and len(settings.jwt_secret) >= 32
    assert settings.jwt_secret != base["SECRET_KEY"]
    assert settings.redacted()["jwt_secret"] == "***"
