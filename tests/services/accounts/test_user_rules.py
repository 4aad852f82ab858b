"""The rules a new account's email, name and password must pass, and the messages (with the
field they belong to) that the API and the forms show; what a new account is by default; and
why its sign-ins end (the reason an operator reads in the log)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import User
from portal.services.accounts import users as user_service
from portal.services.accounts.users import (
    EMAIL_MAX,
    NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    UserError,
    authenticate,
    create_user,
    find_by_email,
    set_active,
    set_password,
    validate_email,
    validate_name,
    validate_password,
)

PASSWORD = "s3cret-enough"


def refusal(rule, value) -> tuple[str | None, str]:
    with pytest.raises(UserError) as caught:
        rule(value)
    return caught.value.field, str(caught.value)


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "email is required"),
        ("   ", "email is required"),
        (None, "email is required"),
        ("x" * (EMAIL_MAX - 11) + "@example.com", f"email must be at most {EMAIL_MAX} characters"),
        ("gm@example", "'gm@example' is not a valid email address"),
    ],
)
def test_email_refusals(email, message) -> None:
    assert refusal(validate_email, email) == ("email", message)


def test_an_email_of_the_longest_length_is_accepted_trimmed() -> None:
    longest = "x" * (EMAIL_MAX - 12) + "@example.com"
    assert validate_email(f"  {longest} ") == longest


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is required"),
        (None, "name is required"),
        (" \t ", "name is required"),
        ("n" * (NAME_MAX + 1), f"name must be at most {NAME_MAX} characters"),
        ("Ada\x07", "name must not contain control characters"),
        (
            "Ada\u202e",
            "name must not contain bidirectional control characters (U+202A to U+202E, "
            "U+2066 to U+2069)",
        ),
        ("\u200b\u200c", "name must contain visible characters"),
        ("Ada\x07\u202e", "name must not contain control characters"),
    ],
)
def test_name_refusals(name, message) -> None:
    assert refusal(validate_name, name) == ("name", message)


def test_a_name_of_the_longest_length_is_accepted_trimmed() -> None:
    assert validate_name(" " + "n" * NAME_MAX + " ") == "n" * NAME_MAX


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (None, "password must be a string"),
        ("p" * (PASSWORD_MIN - 1), f"password must be at least {PASSWORD_MIN} characters"),
        ("p" * (PASSWORD_MAX + 1), f"password must be at most {PASSWORD_MAX} characters"),
    ],
)
def test_password_refusals(password, message) -> None:
    assert refusal(validate_password, password) == ("password", message)


@pytest.mark.parametrize("length", [PASSWORD_MIN, PASSWORD_MAX])
def test_passwords_at_the_limits_are_accepted(length: int) -> None:
    assert validate_password("p" * length) == "p" * length


def test_a_refusal_is_the_api_error_shape() -> None:
    error = UserError("email is required", "email")
    assert error.message == "email is required" and error.field == "email"
    assert error.errors == {"email": ["email is required"]}
    assert UserError("something is off").errors == {"base": ["something is off"]}


def test_a_new_account_is_an_active_plain_user(app: Flask) -> None:
    user = create_user(db.session, "plain@example.com", "Plain", PASSWORD)
    db.session.commit()
    db.session.expire_all()
    assert (user.admin, user.gamemaster, user.active) == (False, False, True)
    assert authenticate(db.session, "plain@example.com", PASSWORD) is user


def test_an_account_without_a_password_cannot_sign_in(app: Flask) -> None:
    user = create_user(db.session, "owner@example.com", "Owner", None)
    db.session.commit()
    assert user.password_hash is None
    assert authenticate(db.session, "owner@example.com", "") is None
    assert authenticate(db.session, "owner@example.com", "None") is None


def test_a_taken_address_is_refused_case_insensitively(app: Flask) -> None:
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    assert refusal(lambda e: create_user(db.session, e, "Other", PASSWORD), "GM@Example.com") == (
        "email",
        "email 'GM@Example.com' is already taken",
    )


def test_losing_a_race_for_an_address_is_the_same_refusal(app: Flask, monkeypatch) -> None:
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    # Another request creates the address between our check and our insert.
    monkeypatch.setattr(user_service, "find_by_email", lambda session, email: None)
    assert refusal(lambda e: create_user(db.session, e, "Other", PASSWORD), "gm@example.com") == (
        "email",
        "email 'gm@example.com' is already taken",
    )
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_a_created_user_is_gone_when_the_caller_rolls_back(app: Flask) -> None:
    create_user(db.session, "first@example.com", "First", PASSWORD)
    db.session.commit()
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    assert find_by_email(db.session, "gm@example.com") is user
    db.session.rollback()
    assert find_by_email(db.session, "gm@example.com") is None
    assert find_by_email(db.session, "first@example.com") is not None


@pytest.mark.parametrize("email", ["", "   ", None])
def test_a_blank_address_finds_nobody(app: Flask, email) -> None:
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    assert find_by_email(db.session, email) is None


def reasons(caplog) -> list[str]:
    return [r.reason for r in caplog.records if r.getMessage() == "auth.signed_out_everywhere"]


def test_a_password_change_ends_every_sign_in_and_says_why(app: Flask, caplog) -> None:
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="portal"):
        set_password(db.session, user, "a-new-password")
    db.session.commit()
    assert user.session_version == 2
    assert reasons(caplog) == ["password_changed"]
    assert authenticate(db.session, "gm@example.com", "a-new-password") is user
    assert authenticate(db.session, "gm@example.com", PASSWORD) is None


def test_deactivating_ends_every_sign_in_and_says_why(app: Flask, caplog) -> None:
    user = create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="portal"):
        set_active(db.session, user, True)
        assert user.session_version == 1  # activating ends nothing
        set_active(db.session, user, False)
    db.session.commit()
    assert user.active is False and user.session_version == 2
    assert reasons(caplog) == ["deactivated"]
    set_active(db.session, user, 1)
    db.session.commit()
    assert user.active is True


@pytest.mark.postgres
def test_losing_a_race_keeps_the_callers_other_work_on_postgresql(app: Flask, monkeypatch) -> None:
    create_user(db.session, "gm@example.com", "GM", PASSWORD)
    db.session.commit()
    first = create_user(db.session, "first@example.com", "First", PASSWORD)  # not committed
    monkeypatch.setattr(user_service, "find_by_email", lambda session, email: None)
    with pytest.raises(UserError, match="already taken"):
        create_user(db.session, "gm@example.com", "Other", PASSWORD)
    db.session.commit()  # the transaction is still usable: only the savepoint was undone
    db.session.expire_all()
    monkeypatch.undo()
    assert find_by_email(db.session, "first@example.com") is first
