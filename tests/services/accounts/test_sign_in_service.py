"""`authenticate`, the one password check of every sign-in route, at the service layer: the
length limits it applies, the lockout and how a lock ends, and the attempt log an operator reads
(docs/security.md)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import User, utcnow
from portal.services.accounts import users as user_service
from portal.services.accounts.users import (
    EMAIL_MAX,
    PASSWORD_MAX,
    LockoutPolicy,
    authenticate,
    create_user,
    is_locked,
    list_users,
    unlock,
)

PASSWORD = "s3cret-enough"
GM = "gm@example.com"
THREE = LockoutPolicy(threshold=3, duration=timedelta(minutes=5))


@pytest.fixture
def gm(app: Flask) -> User:
    user = create_user(db.session, GM, "Gus GM", PASSWORD, gamemaster=True)
    db.session.commit()
    return user


def state(user: User) -> tuple[int, bool]:
    db.session.expire_all()
    return user.failed_sign_ins, is_locked(user)


def fail(times: int, policy: LockoutPolicy = THREE) -> None:
    for _ in range(times):
        assert authenticate(db.session, GM, "wrong password", policy=policy) is None


@pytest.mark.parametrize(
    ("email", "password"), [(None, PASSWORD), (GM, None), (42, PASSWORD), (GM, b"s3cret-enough")]
)
def test_credentials_that_are_not_text_sign_nobody_in(gm, email, password) -> None:
    assert authenticate(db.session, email, password) is None


def test_the_first_unknown_address_a_process_sees_is_refused(app: Flask, monkeypatch) -> None:
    monkeypatch.setattr(user_service, "_DUMMY_HASH", None)  # a freshly started worker
    assert authenticate(db.session, "nobody@example.com", PASSWORD) is None
    assert authenticate(db.session, "nobody@example.com", PASSWORD) is None


def test_an_address_of_the_longest_allowed_length_signs_in(app: Flask) -> None:
    email = "a" * (EMAIL_MAX - len("@example.com")) + "@example.com"
    user = create_user(db.session, email, "Long", PASSWORD)
    db.session.commit()
    assert authenticate(db.session, email.upper(), PASSWORD) is user


def test_a_password_of_the_longest_allowed_length_signs_in_and_a_longer_one_not(app) -> None:
    longest = "p" * PASSWORD_MAX
    create_user(db.session, GM, "Gus GM", longest)
    db.session.commit()
    assert authenticate(db.session, GM, longest) is not None
    # Only the first PASSWORD_MAX characters are hashed-checked; the rest must not be ignored.
    assert authenticate(db.session, GM, longest + "p") is None


def test_the_threshold_th_consecutive_failure_locks_even_the_right_password_out(gm) -> None:
    fail(2)
    assert state(gm) == (2, False)
    fail(1)
    assert state(gm) == (0, True)  # locked; the count starts over for after the lock
    assert timedelta(minutes=4) < gm.locked_until - utcnow() <= timedelta(minutes=5)
    assert authenticate(db.session, GM, PASSWORD, policy=THREE) is None
    fail(5)  # refusals while locked neither count nor extend the lock
    assert state(gm) == (0, True)


def test_after_a_lock_the_full_threshold_applies_again(gm) -> None:
    fail(3)
    gm.locked_until = utcnow() - timedelta(seconds=1)  # the lock has run out
    db.session.commit()
    fail(2)
    assert state(gm) == (2, False)
    fail(1)
    assert state(gm)[1] is True


def test_a_threshold_of_zero_never_locks(gm) -> None:
    never = LockoutPolicy(threshold=0)
    fail(12, never)
    assert state(gm) == (12, False)
    assert authenticate(db.session, GM, PASSWORD, policy=never) is gm


def test_the_default_policy_locks_after_ten_failures(gm) -> None:
    for _ in range(9):
        assert authenticate(db.session, GM, "wrong password") is None
    assert state(gm) == (9, False)
    assert authenticate(db.session, GM, "wrong password") is None
    assert state(gm) == (0, True)


def test_a_lock_ends_when_its_time_is_up(gm, monkeypatch) -> None:
    end = utcnow() + timedelta(minutes=5)
    gm.locked_until = end
    monkeypatch.setattr(user_service, "utcnow", lambda: end - timedelta(microseconds=1))
    assert is_locked(gm) is True
    monkeypatch.setattr(user_service, "utcnow", lambda: end)
    assert is_locked(gm) is False


def test_signing_in_after_a_lock_ran_out_clears_it(gm) -> None:
    fail(3)
    gm.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    other = create_user(db.session, "aaron@example.com", "Aaron", PASSWORD)
    db.session.commit()
    # An expired lock still sorts the account among the locked ones, until it signs in.
    assert list_users(db.session) == [gm, other]
    assert authenticate(db.session, GM, PASSWORD, policy=THREE) is gm
    db.session.expire_all()
    assert gm.locked_until is None and gm.failed_sign_ins == 0
    assert list_users(db.session) == [other, gm]


def test_a_success_resets_the_count(gm) -> None:
    fail(2)
    assert authenticate(db.session, GM, PASSWORD, policy=THREE) is gm
    fail(2)
    assert state(gm) == (2, False)


def test_unlock_lifts_the_lock_and_starts_the_count_over(gm) -> None:
    fail(3)
    unlock(db.session, gm)
    db.session.commit()
    assert state(gm) == (0, False) and gm.locked_until is None
    assert authenticate(db.session, GM, PASSWORD, policy=THREE) is gm


def test_accounts_are_listed_locked_first_then_by_address_ignoring_case(app) -> None:
    emails = ["b@example.com", "A_z@example.com", "aaz@example.com", "C@example.com"]
    made = {email: create_user(db.session, email, "X", None) for email in emails}
    made["C@example.com"].locked_until = utcnow() + timedelta(minutes=5)
    db.session.commit()
    # How the database orders "_" against letters depends on its collation; it must be the
    # order of the lower-case addresses (in bytes, "_" sorts before "a" but after "A").
    underscore_first = db.session.scalar(sa.select(sa.literal("a_z") < sa.literal("aaz")))
    middle = ["A_z@example.com", "aaz@example.com"]
    if not underscore_first:
        middle.reverse()
    listed = [user.email for user in list_users(db.session)]
    assert listed == ["C@example.com", *middle, "b@example.com"]


def test_the_account_list_shows_at_most_500(app) -> None:
    db.session.add_all(
        User(email=f"user{i:03}@example.com", name="X", active=True) for i in range(501)
    )
    db.session.commit()
    listed = list_users(db.session)
    assert len(listed) == 500 and listed[-1].email == "user499@example.com"


def attempts(caplog) -> list[tuple]:
    return [
        (
            r.getMessage(),
            getattr(r, "reason", None),
            r.email,
            r.via,
            r.remote_addr,
            getattr(r, "user_id", None),
        )
        for r in caplog.records
        if r.getMessage().startswith("auth.sign_in")
    ]


def test_every_outcome_is_logged_with_who_where_and_why(gm, caplog) -> None:
    inactive = create_user(db.session, "idle@example.com", "Idle", PASSWORD)
    inactive.active = False
    db.session.commit()
    gm_id, idle_id = str(gm.id), str(inactive.id)
    addr = "203.0.113.7"
    with caplog.at_level(logging.INFO, logger="portal"):
        authenticate(db.session, " nobody@example.com ", PASSWORD, via="api", remote_addr=addr)
        authenticate(db.session, "idle@example.com", PASSWORD, via="chiwar", remote_addr=addr)
        authenticate(db.session, GM, "wrong", via="portal", remote_addr=addr, policy=THREE)
        fail(2)
        authenticate(db.session, "GM@example.com", PASSWORD, via="api", remote_addr=addr)
        unlock(db.session, gm)
        authenticate(db.session, GM, PASSWORD, via="portal", remote_addr=None)
    logged = attempts(caplog)
    failed = "auth.sign_in_failed"
    assert logged[0] == (failed, "unknown", "nobody@example.com", "api", addr, None)
    assert logged[1] == (failed, "inactive", "idle@example.com", "chiwar", addr, idle_id)
    assert logged[2] == (failed, "wrong_password", GM, "portal", addr, gm_id)
    assert logged[5] == (failed, "locked", "GM@example.com", "api", addr, gm_id)
    assert logged[6] == ("auth.sign_in", None, GM, "portal", None, gm_id)
    assert len(logged) == 7


def test_a_very_long_address_is_logged_cut_to_the_longest_valid_one(app, caplog) -> None:
    email = "x" * 1000 + "@example.com"
    with caplog.at_level(logging.INFO, logger="portal"):
        assert authenticate(db.session, email, PASSWORD, via="api") is None
    (entry,) = attempts(caplog)
    assert entry[2] == email[:EMAIL_MAX]
