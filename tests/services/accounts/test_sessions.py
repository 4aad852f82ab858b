"""Portal sign-ins the server can end, at the service layer: what a sign-in records, which
cookie ids still stand for a user, and how logging out and "sign out everywhere" end them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.config import Settings
from portal.extensions import db
from portal.models import LoginSession, User, utcnow
from portal.services.accounts import sessions as session_service
from portal.services.accounts.jwt_tokens import issue_jwt, verify_jwt
from portal.services.accounts.sessions import (
    end_all_sign_ins,
    end_login_session,
    parse_alternative_id,
    start_login_session,
    user_for_sign_in,
)
from portal.services.accounts.users import create_user

MAX_AGE = timedelta(days=14)


def make_user(email: str = "gm@example.com") -> User:
    user = create_user(db.session, email, "Gus GM", None, gamemaster=True)
    db.session.commit()
    return user


@pytest.fixture
def gm(app: Flask) -> User:
    return make_user()


def signed_in(user: User, remote_addr: str | None = "198.51.100.4") -> str:
    """A new sign-in of `user`; the id its cookies would carry."""
    start_login_session(db.session, user, remote_addr)
    db.session.commit()
    return f"{user.id}:{user.session_version}:{user.login_session_id}"


def rows() -> list[LoginSession]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(LoginSession).order_by(LoginSession.created_at)))


@pytest.mark.parametrize(
    ("remote_addr", "recorded"),
    [("198.51.100.4", "198.51.100.4"), ("f" * 100, "f" * 64), ("", None), (None, None)],
)
def test_a_sign_in_records_where_it_came_from(gm, remote_addr, recorded) -> None:
    alternative_id = signed_in(gm, remote_addr)
    (row,) = rows()
    assert row.user_id == gm.id and row.remote_addr == recorded and row.revoked_at is None
    assert alternative_id.endswith(f":{row.id}")


def test_the_cookie_id_of_a_sign_in_stands_for_its_user(gm) -> None:
    alternative_id = signed_in(gm)
    db.session.expire_all()
    user = user_for_sign_in(db.session, alternative_id, MAX_AGE)
    assert user is gm
    assert user.login_session_id == rows()[0].id


@pytest.mark.parametrize(
    "value",
    ["", None, "garbage", "a:b", "a:1:b", f"{uuid.uuid4()}:x:{uuid.uuid4()}", "1:2:3:4"],
)
def test_ids_of_another_shape_are_not_sign_ins(value) -> None:
    assert parse_alternative_id(value) is None


def test_an_id_is_read_in_its_parts() -> None:
    user_id, login_id = uuid.uuid4(), uuid.uuid4()
    assert parse_alternative_id(f"{user_id}:7:{login_id}") == (user_id, 7, login_id)


def test_another_users_sign_in_does_not_stand_for_this_user(gm) -> None:
    other = make_user("other@example.com")
    theirs = signed_in(other)
    login_id = theirs.rsplit(":", 1)[1]
    forged = f"{gm.id}:{gm.session_version}:{login_id}"
    assert user_for_sign_in(db.session, forged, MAX_AGE) is None
    assert user_for_sign_in(db.session, theirs, MAX_AGE) is other


def test_a_sign_in_lasts_exactly_its_max_age(gm, monkeypatch) -> None:
    alternative_id = signed_in(gm)
    created = rows()[0].created_at
    monkeypatch.setattr(session_service, "utcnow", lambda: created + MAX_AGE)
    assert user_for_sign_in(db.session, alternative_id, MAX_AGE) is gm
    later = created + MAX_AGE + timedelta(microseconds=1)
    monkeypatch.setattr(session_service, "utcnow", lambda: later)
    assert user_for_sign_in(db.session, alternative_id, MAX_AGE) is None


def test_an_inactive_user_or_an_old_version_is_not_signed_in(gm) -> None:
    alternative_id = signed_in(gm)
    stale = alternative_id.replace(f":{gm.session_version}:", f":{gm.session_version + 1}:")
    assert user_for_sign_in(db.session, stale, MAX_AGE) is None
    gm.active = False
    db.session.commit()
    assert user_for_sign_in(db.session, alternative_id, MAX_AGE) is None


def test_logging_out_ends_only_that_sign_in_and_keeps_when_it_ended(gm) -> None:
    first, second = signed_in(gm), signed_in(gm)
    user = user_for_sign_in(db.session, first, MAX_AGE)
    first_id = user.login_session_id
    end_login_session(db.session, user)
    db.session.commit()
    assert user_for_sign_in(db.session, first, MAX_AGE) is None
    assert user_for_sign_in(db.session, second, MAX_AGE) is gm

    def ended() -> dict[uuid.UUID, object]:
        return {row.id: row.revoked_at for row in rows()}

    before = ended()
    assert before[first_id] is not None and list(before.values()).count(None) == 1
    # Ending it again (a second logout from a copied cookie) changes nothing.
    user.login_session_id = first_id
    end_login_session(db.session, user)
    db.session.commit()
    assert ended() == before


def test_logging_out_a_user_loaded_without_a_sign_in_ends_nothing(gm) -> None:
    signed_in(gm)
    db.session.expunge_all()
    fresh = db.session.get(User, gm.id)  # loaded by other means than a portal sign-in
    end_login_session(db.session, fresh)
    db.session.commit()
    assert rows()[0].revoked_at is None


def test_signing_out_everywhere_ends_every_sign_in_of_the_user_only(gm) -> None:
    other = make_user("other@example.com")
    mine = [signed_in(gm), signed_in(gm)]
    theirs = signed_in(other)
    logged_out = signed_in(gm)
    end_login_session(db.session, user_for_sign_in(db.session, logged_out, MAX_AGE))
    db.session.commit()
    ended_before = {row.id: row.revoked_at for row in rows() if row.revoked_at is not None}
    version = gm.session_version

    end_all_sign_ins(db.session, gm, "sign_out_everywhere")
    assert gm.session_version == version + 1  # known before the commit
    db.session.commit()
    assert all(user_for_sign_in(db.session, value, MAX_AGE) is None for value in mine)
    assert user_for_sign_in(db.session, theirs, MAX_AGE) is other
    db.session.expire_all()
    assert other.session_version == 1
    by_id = {row.id: row for row in rows()}
    assert all(by_id[i].revoked_at == when for i, when in ended_before.items())
    assert all(row.revoked_at is not None for row in by_id.values() if row.user_id == gm.id)


def test_a_token_issued_right_after_signing_out_everywhere_works(gm, app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    end_all_sign_ins(db.session, gm, "password_changed")
    token = issue_jwt(gm, settings).token
    db.session.commit()
    assert verify_jwt(db.session, token, settings) is not None
    assert gm.session_version == 2


def test_signing_in_again_after_signing_out_everywhere_works(gm) -> None:
    end_all_sign_ins(db.session, gm, "sign_out_everywhere")
    alternative_id = signed_in(gm)
    assert user_for_sign_in(db.session, alternative_id, MAX_AGE) is gm
    assert utcnow() - rows()[0].created_at < timedelta(minutes=1)
