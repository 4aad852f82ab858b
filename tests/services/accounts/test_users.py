"""Users and API tokens: the services and the `users` CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiToken, User, utcnow
from portal.services.accounts import tokens as token_service
from portal.services.accounts.tokens import (
    TokenError,
    hash_token,
    issue_token,
    lookup_token,
    revoke_all,
    revoke_token,
    user_for_token,
)
from portal.services.accounts.users import UserError, authenticate, create_user, find_by_email

PASSWORD = "s3cret-enough"


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# --- users --------------------------------------------------------------------------------


def test_create_user_stores_hash_and_keeps_email_as_typed(app):
    user = create_user(db.session, "  Ada.Admin@Example.COM ", "Ada", PASSWORD, admin=True)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(User, user.id)
    assert stored.email == "Ada.Admin@Example.COM"
    assert stored.admin is True and stored.gamemaster is False and stored.active is True
    assert stored.password_hash and stored.password_hash != PASSWORD
    assert PASSWORD not in stored.password_hash
    assert stored.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("email", "name", "password", "field"),
    [
        ("", "Ada", PASSWORD, "email"),
        ("not-an-email", "Ada", PASSWORD, "email"),
        ("a b@example.com", "Ada", PASSWORD, "email"),
        ("x" * 320 + "@example.com", "Ada", PASSWORD, "email"),
        ("ada@example.com", "   ", PASSWORD, "name"),
        ("ada@example.com", "x" * 201, PASSWORD, "name"),
        ("ada@example.com", "Ada", "short", "password"),
        ("ada@example.com", "Ada", "x" * 1025, "password"),
    ],
)
def test_create_user_rejects_bad_input(app, email, name, password, field):
    with pytest.raises(UserError) as caught:
        create_user(db.session, email, name, password)
    assert caught.value.field == field
    assert caught.value.errors == {field: [str(caught.value)]}
    db.session.rollback()
    assert count(User) == 0


def test_duplicate_email_is_refused_case_insensitively(app):
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    with pytest.raises(UserError, match="already taken"):
        create_user(db.session, "GM@EXAMPLE.com", "Other", PASSWORD)
    db.session.rollback()
    assert count(User) == 1
    assert find_by_email(db.session, "Gm@Example.Com").name == "GM"


def test_authenticate(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD, gamemaster=True)
    no_password = create_user(db.session, "owner@example.com", "Owner", None)
    db.session.commit()
    assert authenticate(db.session, "GM@example.com", PASSWORD) is user
    assert authenticate(db.session, "gm@example.com", PASSWORD + "x") is None
    assert authenticate(db.session, "nobody@example.com", PASSWORD) is None
    assert no_password.password_hash is None
    assert authenticate(db.session, "owner@example.com", "") is None
    user.active = False
    db.session.commit()
    assert authenticate(db.session, "gm@example.com", PASSWORD) is None


@pytest.mark.production_password_hash
def test_passwords_are_stored_with_scrypt_and_checked_against_it(app):
    """The production hash (the rest of the suite uses a cheap one, see tests/conftest.py)."""
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD, gamemaster=True)
    db.session.commit()
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    assert authenticate(db.session, "gm@example.com", PASSWORD) is user
    assert authenticate(db.session, "gm@example.com", PASSWORD + "x") is None
    assert authenticate(db.session, "nobody@example.com", PASSWORD) is None


def test_the_tests_hash_passwords_cheaply(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    assert user.password_hash.startswith("pbkdf2:sha256:1000$")


# --- tokens -------------------------------------------------------------------------------


def test_token_is_stored_only_as_its_hash(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    token = issue_token(db.session, user, "laptop")
    db.session.commit()
    assert token.startswith("cp_") and len(token) > 40
    record = db.session.scalars(sa.select(ApiToken)).one()
    assert record.token_hash == hash_token(token) != token
    assert record.name == "laptop" and record.last_used_at is None and record.revoked_at is None
    # the clear token appears in no column of the table
    rows = db.session.execute(sa.text("SELECT * FROM api_tokens")).all()
    assert all(token not in str(value) for row in rows for value in row)
    assert user_for_token(db.session, token) is user


def test_unknown_and_malformed_tokens_are_refused(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    token = issue_token(db.session, user)
    db.session.commit()
    for bad in (None, "", token[:-1], token + "x", "cp_nope", token[3:], "x" * 10_000):
        assert user_for_token(db.session, bad) is None


def test_revoked_tokens_and_inactive_users_are_refused(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    first, second, third = (issue_token(db.session, user, n) for n in ("a", "b", "c"))
    db.session.commit()
    first_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == "a"))
    revoke_token(db.session, first_id)
    revoke_token(db.session, str(first_id))  # idempotent
    db.session.commit()
    assert user_for_token(db.session, first) is None
    assert user_for_token(db.session, second) is user

    user.active = False
    db.session.commit()
    assert user_for_token(db.session, second) is None
    user.active = True
    assert revoke_all(db.session, user) == 2
    db.session.commit()
    assert user_for_token(db.session, second) is None
    assert user_for_token(db.session, third) is None
    assert revoke_all(db.session, user) == 0


def test_revoke_unknown_token_is_a_clear_error(app):
    with pytest.raises(TokenError, match="no token"):
        revoke_token(db.session, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(TokenError, match="not a token id"):
        revoke_token(db.session, "banana")


def test_last_used_at_is_written_at_most_once_a_minute(app, monkeypatch):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    token = issue_token(db.session, user)
    db.session.commit()

    def last_used():
        return db.session.execute(sa.select(ApiToken.last_used_at)).scalar_one()

    first = lookup_token(db.session, token)
    db.session.commit()
    assert first.touched is True
    stamped = last_used()
    assert stamped is not None and abs(stamped - utcnow()) < timedelta(seconds=30)

    again = lookup_token(db.session, token)
    db.session.commit()
    assert again.touched is False
    assert last_used() == stamped

    later = utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(token_service, "utcnow", lambda: later)
    third = lookup_token(db.session, token)
    db.session.commit()
    assert third.touched is True
    assert last_used() == later


def test_token_name_is_validated(app):
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    with pytest.raises(TokenError):
        issue_token(db.session, user, "  ")
    with pytest.raises(TokenError):
        issue_token(db.session, user, "n" * 201)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_create_with_token_prints_a_working_token(app, runner):
    result = runner.invoke(
        args=[
            *("users", "create", "GM@example.com", "--name", "Game Master"),
            *("--password", PASSWORD, "--gamemaster", "--token"),
        ]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("cp_") and "\n" not in token
    assert "Created user GM@example.com" in result.stderr
    db.session.expire_all()
    user = user_for_token(db.session, token)
    assert user is not None and user.email == "GM@example.com"
    assert user.gamemaster is True and user.admin is False
    assert authenticate(db.session, "gm@example.com", PASSWORD) is not None


def test_cli_reads_password_from_stdin(app, runner):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "admin@example.com",
            "--name",
            "Admin",
            "--password",
            "-",
            "--admin",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # no token asked for, nothing on stdout
    db.session.expire_all()
    user = authenticate(db.session, "admin@example.com", PASSWORD)
    assert user is not None and user.admin is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad-email", "--name", "X", "--password", PASSWORD], "not a valid email"),
        (["a@example.com", "--name", "X", "--password", "short"], "at least 8"),
        (["a@example.com", "--name", " ", "--password", PASSWORD], "name is required"),
        (["a@example.com", "--name", "X"], "--password"),
    ],
)
def test_cli_create_bad_input_exits_nonzero_and_writes_nothing(app, runner, args, message):
    result = runner.invoke(args=["users", "create", *args, "--token"])
    assert result.exit_code != 0
    assert message in result.output
    assert "cp_" not in result.stdout
    db.session.expire_all()
    assert count(User) == 0
    assert count(ApiToken) == 0


def test_cli_create_duplicate_is_refused(app, runner):
    ok = runner.invoke(
        args=["users", "create", "a@example.com", "--name", "A", "--password", PASSWORD]
    )
    assert ok.exit_code == 0, ok.output
    dup = runner.invoke(
        args=["users", "create", "A@EXAMPLE.COM", "--name", "B", "--password", PASSWORD, "--token"]
    )
    assert dup.exit_code == 1
    assert "already taken" in dup.output
    db.session.expire_all()
    assert count(User) == 1 and count(ApiToken) == 0


def test_cli_token_and_revoke_tokens(app, runner):
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    issued = runner.invoke(args=["users", "token", "GM@example.com", "--name", "ci"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    db.session.expire_all()
    assert user_for_token(db.session, token) is not None
    assert db.session.scalar(sa.select(ApiToken.name)) == "ci"

    revoked = runner.invoke(args=["users", "revoke-tokens", "gm@example.com"])
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked 1 token(s)" in revoked.output
    db.session.expire_all()
    assert user_for_token(db.session, token) is None

    missing = runner.invoke(args=["users", "token", "nobody@example.com"])
    assert missing.exit_code == 1 and "no user" in missing.output
    missing = runner.invoke(args=["users", "revoke-tokens", "nobody@example.com"])
    assert missing.exit_code == 1 and "no user" in missing.output
