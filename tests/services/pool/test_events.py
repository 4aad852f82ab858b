"""record_pool_event: the row in the caller's transaction, the log line once it commits."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import PoolEvent
from portal.services.pool.events import PoolEventKind, record_pool_event


def event_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(PoolEvent)) or 0


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "portal.pool" and r.getMessage() == name]


def test_the_line_is_written_when_the_event_commits(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    campaign_id, user_id = uuid.uuid4(), uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="portal.pool"):
        event = record_pool_event(
            db.session,
            PoolEventKind.CLEANED,
            campaign_id=campaign_id,
            user_id=user_id,
            pool_type="user",
            duration_ms=12.5,
            detail={"reason": "abandoned", "message": "gone", "data": {"api_token": "s3cret"}},
        )
        assert event_count() == 1  # in the transaction at once
        assert lines(caplog, "pool.cleaned") == []  # not committed yet
        db.session.commit()

    [line] = lines(caplog, "pool.cleaned")
    assert line.levelno == logging.INFO
    fields = vars(line)
    assert fields["event_id"] == event.id
    assert fields["campaign_id"] == str(campaign_id) and fields["user_id"] == str(user_id)
    assert fields["pool_type"] == "user" and fields["duration_ms"] == 12.5
    assert fields["reason"] == "abandoned"
    assert fields["ctx_message"] == "gone"  # `message` would clash with the record's own
    assert fields["data"] == {"api_token": "***"}
    assert "s3cret" not in str(fields)
    stored = db.session.get(PoolEvent, event.id)
    assert stored is not None and stored.kind == "cleaned"
    assert stored.detail["data"] == {"api_token": "s3cret"}  # masked in the log only


def test_a_rolled_back_event_leaves_no_row_and_no_line(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="portal.pool"):
        record_pool_event(db.session, PoolEventKind.ASSIGNED, pool_type="master")
        db.session.rollback()
        record_pool_event(db.session, PoolEventKind.FALLBACK)
        db.session.close()  # ended without a commit, like a request torn down
        db.session.execute(sa.select(1))
        db.session.commit()

    assert event_count() == 0
    assert lines(caplog, "pool.assigned") == [] and lines(caplog, "pool.fallback") == []


def test_a_savepoint_rolled_back_takes_its_events_line_with_it(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="portal.pool"):
        try:
            with db.session.begin_nested():
                record_pool_event(db.session, PoolEventKind.RETIRED, detail={"reason": "inner"})
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
        with db.session.begin_nested():
            record_pool_event(db.session, PoolEventKind.RETIRED, detail={"reason": "kept"})
        assert lines(caplog, "pool.retired") == []  # a savepoint released commits nothing
        db.session.commit()

    assert [vars(r)["reason"] for r in lines(caplog, "pool.retired")] == ["kept"]
    assert list(db.session.scalars(sa.select(PoolEvent.detail))) == [{"reason": "kept"}]


def test_failures_and_alerts_are_logged_above_info(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="portal.pool"):
        record_pool_event(db.session, PoolEventKind.REPLENISH_FAILED, detail={"error": "boom"})
        record_pool_event(db.session, PoolEventKind.ALERT, detail={"incident": "x"})
        record_pool_event(db.session, PoolEventKind.SNAPSHOT)
        db.session.commit()

    assert [r.levelno for r in lines(caplog, "pool.replenish_failed")] == [logging.ERROR]
    assert [r.levelno for r in lines(caplog, "pool.alert")] == [logging.WARNING]
    assert [r.levelno for r in lines(caplog, "pool.snapshot")] == [logging.DEBUG]


def test_an_unknown_kind_is_refused_and_nothing_is_written(app: Flask) -> None:
    with pytest.raises(ValueError, match="exploded"):
        record_pool_event(db.session, "exploded")
    db.session.commit()
    assert event_count() == 0


def test_every_kind_is_stored_and_read_back_as_itself(app: Flask) -> None:
    for kind in PoolEventKind:
        record_pool_event(db.session, kind)
    db.session.commit()

    stored = list(db.session.scalars(sa.select(PoolEvent.kind).order_by(PoolEvent.id)))
    assert stored == [kind.value for kind in PoolEventKind]
    for kind in PoolEventKind:  # the enum compares as its value in SQL, on both databases
        found = db.session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == kind))
        assert found == 1, kind
