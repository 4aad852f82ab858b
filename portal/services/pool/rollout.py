"""Rolling rebuilds after a template version change: retire the old campaigns, cap the builds.

When the master template's version changes (an edit noticed by the monitor, `template bump`,
`template import --replace`), every pool campaign built from an older version is *stale*: it
must never be handed out, and the pools must be rebuilt at the new version.

* Retire at once, in the bump's own transaction (`retire_old_versions`). A stale campaign is
  never claimed anyway (the claim filters on the current version), so keeping it `ready`
  would buy no availability; retiring it in the transaction that changes the version means
  that, from the moment the new version is visible, no stale campaign is `ready`, and a claim
  that read the old version a moment earlier finds nothing to take (its guarded UPDATE needs
  `pool_status = 'ready'`). Builds of the old version still running are retired too; their
  final flip to `ready` is guarded (`replenish.build_reserved`), so they cannot come back.
* Rebuild gradually: while a rollout is in progress (old-version campaigns are still in the
  database: stale or retired and not yet deleted), a build is reserved only while fewer than
  `rollout_max_building` pool builds are in flight, counted across all pools
  (`replenish.reserve_build`, under the reservation lock below), so an edit does not turn
  into as many simultaneous builds as there are workers.
* Delete afterwards: the monitor queues the clean-up once every pool is back at its target,
  so the deletes do not compete with the rebuild; the rollout is over when the retired
  campaigns are gone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign, utcnow
from portal.services.infra.queue import enqueue_cleanup
from portal.services.pool.events import PoolEventKind, record_pool_event

# The transaction advisory lock that serializes build reservations (PostgreSQL): any constant
# shared by every process; "cpbuild" in ASCII.
ADMISSION_LOCK_KEY = 0x63706275696C64
# Pool states an old-version campaign can be in while a rollout is under way.
OLD_STATES = ("ready", "building", "retired")


class BuildRefused(Exception):
    """A pool build was not started or not finished; not a failure of the build itself."""


class BuildThrottled(BuildRefused):
    """A rollout is in progress and `rollout_max_building` builds are already in flight."""

    def __init__(self, in_flight: int, limit: int) -> None:
        super().__init__(f"{in_flight} pool builds in flight, the rollout allows {limit}")
        self.in_flight = in_flight
        self.limit = limit


class BuildSuperseded(BuildRefused):
    """The template version changed while the campaign was being built: it was retired."""


@dataclass(frozen=True)
class RetiredCampaign:
    id: uuid.UUID
    pool_type: str | None
    template_version: int | None


def retire_superseded_build(session: Session, campaign_ids: list[uuid.UUID]) -> None:
    """Retire a build that turned out to be of an old version (it started from a template
    read before the change, after the change had retired everything else); commit.
    Left in `building`, its rows would hold a slot of the rollout's cap until reaped, then
    count as a failed build."""
    now = utcnow()
    rows = session.execute(
        sa.update(Campaign)
        .where(Campaign.id.in_(campaign_ids), Campaign.pool_status == "building")
        .values(pool_status="retired", updated_at=now)
        .returning(Campaign.id, Campaign.pool_type, Campaign.user_id, Campaign.template_version)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        current = session.scalar(current_version())
        for row in rows:
            _record_retired(session, row, "superseded", current, now)
    session.commit()


def _record_retired(
    session: Session,
    row: sa.Row[uuid.UUID, str | None, uuid.UUID, int | None],
    reason: str,
    current: int | None,
    now: datetime,
) -> None:
    """The `retired` event of one campaign (`row`: its id, pool type, owner and version)."""
    record_pool_event(
        session,
        PoolEventKind.RETIRED,
        campaign_id=row.id,
        user_id=row.user_id if row.pool_type == "user" else None,
        pool_type=row.pool_type,
        detail={
            "reason": reason,
            "template_version": row.template_version,
            "current_version": current,
        },
        created_at=now,
    )


def current_version() -> sa.Select[int | None]:
    """The master template's version, as a SELECT to run or embed."""
    return (
        sa.select(Campaign.template_version).where(Campaign.is_master_template.is_(True)).limit(1)
    )


def old_version(version: int) -> sa.ColumnElement[bool]:
    """A campaign built from any version but `version` (or from no known version)."""
    return sa.or_(Campaign.template_version.is_(None), Campaign.template_version != version)


def retire_old_versions(
    session: Session,
    version: int,
    *,
    reason: str,
    statuses: tuple[str, ...] = ("ready", "building"),
    now: datetime | None = None,
) -> list[RetiredCampaign]:
    """Mark pool campaigns of any version but `version` in `statuses` as `retired`, with one
    `retired` pool event each; no commit (the caller's transaction decides).

    On PostgreSQL the UPDATE waits for a build holding its campaign's row and re-checks it
    afterwards, so a build that turns `ready` while this runs is retired too."""
    now = now or utcnow()
    rows = session.execute(
        sa.update(Campaign)
        .where(Campaign.is_pool.is_(True), Campaign.pool_status.in_(statuses), old_version(version))
        .values(pool_status="retired", updated_at=now)
        .returning(
            Campaign.id,
            Campaign.pool_type,
            Campaign.user_id,
            Campaign.template_version,
        )
        .execution_options(synchronize_session=False)
    ).all()
    for row in rows:
        _record_retired(session, row, reason, version, now)
    return [RetiredCampaign(r.id, r.pool_type, r.template_version) for r in rows]


def rollout_in_progress(session: Session, version: int) -> bool:
    """Old-version pool campaigns are still around (stale, or retired and not yet deleted)."""
    stmt = sa.select(Campaign.id).where(
        Campaign.is_pool.is_(True), Campaign.pool_status.in_(OLD_STATES), old_version(version)
    )
    return session.scalar(stmt.limit(1)) is not None


def mark_ready_if_current(session: Session, campaign_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Flip reserved pool campaigns from `building` to `ready` (uncommitted, in the build's own
    transaction) if they were built from the current template version and nobody retired or
    reaped them meanwhile; return the ids flipped. None flipped means the build is superseded
    and must not be committed."""
    current = current_version().scalar_subquery()
    return list(
        session.scalars(
            sa.update(Campaign)
            .where(
                Campaign.id.in_(campaign_ids),
                Campaign.pool_status == "building",
                Campaign.template_version == current,
            )
            .values(pool_status="ready")
            .returning(Campaign.id)
            .execution_options(synchronize_session=False)
        )
    )


@dataclass(frozen=True)
class RolloutStep:
    """What one monitor pass did for a rollout."""

    retired: int
    cleanup_job: str | None

    def as_dict(self) -> dict[str, object]:
        return {"retired": self.retired, "cleanup_job": self.cleanup_job}


def advance_rollout(
    session: Session,
    redis_client: redis.Redis,
    version: int,
    *,
    pools_full: bool,
    enqueue: bool,
) -> RolloutStep:
    """The monitor's part of a rollout, every pass (commits).

    Retires any pool campaign of an old version that is still ready or building: a version
    change already did that in its own transaction, so this only catches what it could not
    see (campaigns stamped before an upgrade, a version changed by hand in SQL). Once every
    pool is back at its target (`pools_full`), queues the clean-up that deletes the retired
    campaigns, so deletes never compete with the rebuild."""
    retired = retire_old_versions(session, version, reason="template_version")
    session.commit()
    cleanup_job = None
    if pools_full and enqueue and rollout_in_progress(session, version):
        cleanup_job = enqueue_cleanup(redis_client)
    return RolloutStep(len(retired), cleanup_job)
