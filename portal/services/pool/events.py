"""Recording what happened to the pool: one function writes every `pool_events` row.

`pool_events` is the pool's history: the charts, the hit rate, the demand model, the alert
incidents, the rollout's progress and "what happened to campaign X" are all read from it. So
every row is written by `record_pool_event`, with its kind one of `PoolEventKind`, and every row
gets the same structured log line (docs/operations.md): the event name is `pool.<kind>`, the
row's ids, pool type, duration and detail are its fields, secret-looking fields masked.

Why it does not commit: the event belongs to the transaction of what it records, and callers
end that transaction in different places. A claim and its `assigned` event commit together
(one without the other would hand out a campaign the metrics never see, or count one never
handed out); a version bump commits its `retired` and `template_version` events with the bump;
the monitor commits its `alert` rows after reconciling every incident. A recorder that
committed would split each of those in two.

Why the log line waits for the commit: the line is written when the session's outermost
transaction commits, and dropped when it rolls back (or a savepoint holding the event does), so
the log never reports an event the database does not have, and the line follows the commit as
the hand-written lines did.

Why a Core INSERT, not `session.add`: the claim path counts its milliseconds
(docs/performance.md): a single prebuilt INSERT ... RETURNING runs at once, in order with the
statements around it, without a unit-of-work flush at commit. The returned `PoolEvent` is
attached to the session as the persistent row it is.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import (
    Session,
    SessionTransaction,
    make_transient_to_detached,
    scoped_session,
)

from portal.logs import mask_secrets, safe_log_extra
from portal.models import PoolEvent, utcnow
from portal.models.base import table_of

log = logging.getLogger("portal.pool")


class PoolEventKind(StrEnum):
    """What a `pool_events` row records (the `kind` column), and who records it."""

    # a user got a ready pool campaign (pool.claim); detail: pool_age_s, template_version
    ASSIGNED = "assigned"
    # no pool had one: the campaign was seeded on request (pool.creation); detail: mode
    FALLBACK = "fallback"
    # a pool campaign was built and is ready (pool.replenish); detail: method, rows, in_flight
    REPLENISHED = "replenished"
    # a build failed, or was reaped stuck in `building` (pool.replenish, pool.cleanup);
    # detail: error, reaped
    REPLENISH_FAILED = "replenish_failed"
    # a pool campaign of an old template version was retired (pool.rollout);
    # detail: reason, template_version, current_version
    RETIRED = "retired"
    # the clean-up deleted a pool campaign (pool.cleanup); detail: reason and row counts
    CLEANED = "cleaned"
    # an alert incident opened, escalated or resolved (monitoring.alerts); detail: incident,
    # state, severity, title, message, delivery, data
    ALERT = "alert"
    # the monitor's figures of one pass (monitoring.monitor); detail: levels, workers
    SNAPSHOT = "snapshot"
    # an admin's quick action (pool.actions); detail: admin, action (one of
    # pool.actions.ACTIONS), ok, message, result
    ACTION = "action"
    # the master template's version changed (template.versions); detail: previous, current,
    # reason, fingerprint, retired, actor
    TEMPLATE_VERSION = "template_version"
    # a create refused by the per-user creation limit (pool.quota); detail: limit, retry_after_s
    THROTTLED = "throttled"
    # pool assignment (the kill switch) or refills switched on or off (pool.switches);
    # detail: switch, enabled, previous, actor, actor_id, reason, environment
    SWITCH = "switch"


# Claims: the pool's demand, its hit rate and the assignment charts count these two.
CLAIM_KINDS = (PoolEventKind.ASSIGNED, PoolEventKind.FALLBACK)

# Kinds worth more than an info line; a snapshot every minute is worth less.
LOG_LEVELS: dict[PoolEventKind, int] = {
    PoolEventKind.REPLENISH_FAILED: logging.ERROR,
    PoolEventKind.ALERT: logging.WARNING,
    PoolEventKind.TEMPLATE_VERSION: logging.WARNING,
    PoolEventKind.SWITCH: logging.WARNING,
    PoolEventKind.SNAPSHOT: logging.DEBUG,
}

_TABLE = table_of(PoolEvent)
_INSERT = sa.insert(_TABLE).returning(_TABLE.c.id)
# session.info key: log lines of events not committed yet, with the transaction they were in.
_PENDING = "pool_events.pending_log_lines"


def record_pool_event(
    session: Session,
    kind: PoolEventKind | str,
    *,
    campaign_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    pool_type: str | None = None,
    duration_ms: float | None = None,
    detail: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> PoolEvent:
    """Insert one `pool_events` row in the session's transaction (no commit: the caller's
    transaction decides, see the module docstring) and log it once that transaction commits.

    `kind` must be a `PoolEventKind` (or its value): ValueError otherwise, nothing written."""
    kind = PoolEventKind(kind)
    values: dict[str, Any] = {
        "kind": kind.value,
        "campaign_id": campaign_id,
        "user_id": user_id,
        "pool_type": pool_type,
        "duration_ms": duration_ms,
        "detail": detail,
        "created_at": created_at or utcnow(),
    }
    event_id = session.execute(_INSERT, values).scalar_one()
    event = PoolEvent(id=event_id, **values)
    make_transient_to_detached(event)
    session.add(event)
    _defer_log_line(session, kind, event_id, values)
    return event


def _defer_log_line(
    session: Session, kind: PoolEventKind, event_id: int, values: dict[str, Any]
) -> None:
    fields: dict[str, Any] = mask_secrets(dict(values["detail"] or {}))
    fields.update(
        event_id=event_id,
        campaign_id=_text(values["campaign_id"]),
        user_id=_text(values["user_id"]),
        pool_type=values["pool_type"],
        duration_ms=values["duration_ms"],
    )
    extra = safe_log_extra({k: v for k, v in fields.items() if v is not None})
    given: object = session  # tests and old callers may pass the app's scoped `db.session`
    if isinstance(given, scoped_session):
        session = given()
    transaction = session.get_nested_transaction() or session.get_transaction()
    line = (LOG_LEVELS.get(kind, logging.INFO), f"pool.{kind.value}", extra)
    session.info.setdefault(_PENDING, []).append((transaction, line))


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


@sa.event.listens_for(Session, "after_commit")
def _write_committed(session: Session) -> None:
    """The outermost transaction committed: write its events' lines (a savepoint released
    inside it commits nothing yet)."""
    if session.in_nested_transaction() or _PENDING not in session.info:
        return
    for _, (level, name, extra) in session.info.pop(_PENDING):
        log.log(level, name, extra=extra)


@sa.event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A transaction or savepoint rolled back: its events are gone, and so are their lines."""
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [p for p in pending if not _within(p[0], previous_transaction)]


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended without a commit (closed): nothing was recorded."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
