"""Refilling pools: build ready campaigns with the batch seeder until a pool reaches its target,
with any number of builders (workers, hosts) at once and never past the target.

A builder first *reserves* its campaigns' places in the pool, then builds them:

* **Reservation** (`reserve_build`): one short transaction, serialized with every other
  reservation (a transaction advisory lock on PostgreSQL; SQLite serializes writers), counts the
  pool's level (ready + fresh `building` rows of the current template version) and its builds in
  flight, and commits `building` rows for the campaigns this build will seed, all with one
  `pool_build_id`: at most the deficit, at most `build_batch_size` (K), only while fewer than
  `max_parallel_builds` builds of the pool are in flight, and during a rollout only within its
  cap. Every reserved row counts towards the level the next reservation sees, so however many
  builders run, together they never reserve past the target.
* **Build** (`build_reserved`): the reserved campaigns are seeded in one transaction
  (`CampaignBatchSeeder.seed_many`) that also flips them to `ready`, so a crash can never leave
  a half-built campaign marked ready; builds of one pool run concurrently, each in its own
  transaction. A builder that dies leaves `building` rows that stop counting after the build
  timeout and are reaped (`cleanup.reap_stuck_builds`).

`replenish_pool` loops reserve -> build until the pool is full or its builds are all taken;
with `fan_out`, a reservation that leaves a deficit queues helper refills of the same pool
(`queue.enqueue_refill_helpers`), so idle workers join in. A pool whose builds keep failing
stops after its failure budget and reports it instead of burning the database in a retry loop.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, PoolEvent, User, utcnow
from portal.models.base import table_of
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import (
    REFILL_JOB_TIMEOUT_S,
    enqueue_refill_helpers,
    seeding_workers,
)
from portal.services.pool.config import PoolConfig, load_pool_config
from portal.services.pool.demand import effective_target
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.rollout import (
    ADMISSION_LOCK_KEY,
    BuildSuperseded,
    BuildThrottled,
    mark_ready_if_current,
    retire_superseded_build,
    rollout_in_progress,
)
from portal.services.seeding.batch import CampaignBatchSeeder

log = logging.getLogger("portal.pool")

# The default build timeout (POOL_BUILD_TIMEOUT) is the refill job's.
DEFAULT_BUILD_TIMEOUT_S = REFILL_JOB_TIMEOUT_S
BUILD_STALE_AFTER = timedelta(seconds=DEFAULT_BUILD_TIMEOUT_S)
HALT_COOLDOWN = timedelta(minutes=15)
# Why a reservation took nothing: the pool is at its target (counting builds in flight), its
# `max_parallel_builds` builds are all running, or a rollout's cap is reached.
FULL, BUSY, THROTTLED = "full", "busy", "throttled"
UNLIMITED = 10**9
Progress = Callable[[int, int], None]


@dataclass
class ReplenishReport:
    pool_type: str
    user_id: str | None
    target: int
    level_before: int = 0
    built: list[str] = field(default_factory=list)
    failed: int = 0  # builds (each of 1..K campaigns) that failed
    builds: int = 0  # builds this refill completed
    # why it stopped short: "busy" (max_parallel_builds builds of the pool in flight: they
    # build the rest), "halted", "no_template", "throttled" (a rollout's cap), "paused"
    # (refills switched off)
    skipped: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "pool_type": self.pool_type,
            "user_id": self.user_id,
            "target": self.target,
            "level_before": self.level_before,
            "built": len(self.built),
            "builds": self.builds,
            "campaign_ids": self.built,
            "failed": self.failed,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Reservation:
    """The campaigns one build will seed, reserved (committed as `building`) together."""

    build_id: uuid.UUID
    pool_type: str
    owner_id: uuid.UUID
    campaign_ids: list[uuid.UUID]
    started_at: datetime
    level: int  # the pool's level before this reservation
    remaining: int  # the deficit left once this build is done
    pool_in_flight: int  # builds of this pool in flight, this one included
    in_flight: int  # builds in flight across all pools, this one included


def build_timeout(settings: Settings | None) -> timedelta:
    """How long one build may take (POOL_BUILD_TIMEOUT): a `building` row older than this no
    longer counts as on its way (its builder is presumed dead; the reaper fails it later)."""
    return timedelta(seconds=settings.pool_build_timeout_s if settings else DEFAULT_BUILD_TIMEOUT_S)


def _pool_filter(pool_type: str, user_id: uuid.UUID | None) -> list[sa.ColumnElement[bool]]:
    clauses = [Campaign.is_pool.is_(True), Campaign.pool_type == pool_type]
    if user_id is not None:
        clauses.append(Campaign.user_id == user_id)
    return clauses


def pool_level(
    session: Session,
    pool_type: str,
    version: int,
    user_id: uuid.UUID | None = None,
    *,
    stale_after: timedelta = BUILD_STALE_AFTER,
) -> int:
    """Ready campaigns plus fresh builds of one pool at the current template version."""
    stale_before = utcnow() - stale_after
    stmt = sa.select(sa.func.count()).where(
        *_pool_filter(pool_type, user_id),
        Campaign.template_version == version,
        sa.or_(
            Campaign.pool_status == "ready",
            sa.and_(Campaign.pool_status == "building", Campaign.pool_created_at > stale_before),
        ),
    )
    return session.scalar(stmt) or 0


def builds_in_flight(
    session: Session, since: datetime, pool: tuple[str, uuid.UUID | None] | None = None
) -> int:
    """Builds (seeding transactions, each of 1..K campaigns) in flight: distinct build ids
    among `building` pool campaigns started after `since` (older ones have a dead builder),
    of one pool or of all. A row without a build id (written by an older release) is a build
    of its own."""
    stmt = sa.select(
        sa.func.count(sa.distinct(sa.func.coalesce(Campaign.pool_build_id, Campaign.id)))
    ).where(
        Campaign.is_pool.is_(True),
        Campaign.pool_status == "building",
        Campaign.pool_created_at > since,
    )
    if pool is not None:
        stmt = stmt.where(*_pool_filter(*pool))
    return session.scalar(stmt) or 0


def pool_halted(
    session: Session, pool_type: str, user_id: uuid.UUID | None, failure_budget: int
) -> bool:
    """Whether a pool is resting after `failure_budget` failed builds in a row.

    The rest lasts HALT_COOLDOWN from the latest failure; then one more build is allowed, so a
    pool resumes on its own once whatever broke (the database, a bad template) is fixed, without
    turning a persistent failure into a retry loop."""
    if consecutive_failures(session, pool_type, user_id) < failure_budget:
        return False
    stmt = sa.select(sa.func.max(PoolEvent.created_at)).where(
        PoolEvent.pool_type == pool_type, PoolEvent.kind == PoolEventKind.REPLENISH_FAILED
    )
    if pool_type == "user":
        stmt = stmt.where(PoolEvent.user_id == user_id)
    latest = session.scalar(stmt)
    return latest is not None and utcnow() - latest < HALT_COOLDOWN


def consecutive_failures(session: Session, pool_type: str, user_id: uuid.UUID | None) -> int:
    """Failed builds of a pool since its last successful one."""
    stmt = (
        sa.select(PoolEvent.kind)
        .where(
            PoolEvent.pool_type == pool_type,
            PoolEvent.kind.in_((PoolEventKind.REPLENISHED, PoolEventKind.REPLENISH_FAILED)),
        )
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(100)
    )
    if pool_type == "user":
        stmt = stmt.where(PoolEvent.user_id == user_id)
    count = 0
    for kind in session.scalars(stmt):
        if kind != PoolEventKind.REPLENISH_FAILED:
            break
        count += 1
    return count


# ---------------------------------------------------------------------------- reservation


def _serialize_reservations(session: Session) -> None:
    """Make reservations one at a time until the caller commits or rolls back.

    PostgreSQL: a transaction-level advisory lock (the one rollout admissions always used),
    which touches no row anybody else uses and is released by the commit. SQLite serializes
    writers: a write that changes nothing takes the database's write lock before anything is
    counted."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(ADMISSION_LOCK_KEY)))
        return
    campaigns = table_of(Campaign)
    session.execute(
        sa.update(campaigns).where(sa.false()).values(pool_status=campaigns.c.pool_status)
    )


def batch_size(deficit: int, limit: int) -> int:
    """Campaigns for one build: the deficit, at most `limit` (K), at least one. Never split
    below that to spread a small deficit over idle builders: a build of several campaigns
    costs less per campaign than several builds of one (docs/performance.md), and the pool
    exists so that refills need not be fast; a deficit beyond K is what other builders get."""
    return max(1, min(limit, deficit))


def reserve_build(
    session: Session,
    template: Campaign,
    pool_type: str,
    owner_id: uuid.UUID,
    user_id: uuid.UUID | None,
    *,
    target: int,
    batch_limit: int,
    max_parallel: int,
    rollout_cap: int | None,
    stale_after: timedelta = BUILD_STALE_AFTER,
) -> Reservation | str:
    """Reserve the campaigns of one build (module docstring) and commit; or return why not:
    FULL, BUSY or THROTTLED (nothing written).

    At most `batch_limit` campaigns (K), only while fewer than `max_parallel` builds of the
    pool are in flight and, when a rollout is in progress and `rollout_cap` is given, fewer
    than that many builds across all pools."""
    assert template.template_version is not None
    version = template.template_version
    session.rollback()  # the counts below must come after the lock, in a transaction of their own
    try:
        _serialize_reservations(session)
        since = utcnow() - stale_after
        level = pool_level(session, pool_type, version, user_id, stale_after=stale_after)
        deficit = target - level
        if deficit <= 0:
            session.rollback()
            return FULL
        pool_in_flight = builds_in_flight(session, since, (pool_type, user_id))
        if pool_in_flight >= max_parallel:
            session.rollback()
            return BUSY
        in_flight = builds_in_flight(session, since)
        throttled = rollout_cap is not None and in_flight >= rollout_cap
        if throttled and rollout_in_progress(session, version):
            session.rollback()
            return THROTTLED
        # The reservation's time is taken after its counts: a build that ended while they ran
        # (its `replenished` event is stamped just before its commit) ends before this one starts.
        now = utcnow()
        count = batch_size(deficit, batch_limit)
        build_id = uuid.uuid4()
        ids = [uuid.uuid4() for _ in range(count)]
        session.execute(
            sa.insert(table_of(Campaign)),
            [
                {
                    "id": campaign_id,
                    "user_id": owner_id,
                    "name": f"Pool campaign {campaign_id.hex[:12]}",
                    "description": template.description,
                    "active": True,
                    "is_master_template": False,
                    "is_pool": True,
                    "pool_type": pool_type,
                    "pool_status": "building",
                    "pool_created_at": now,
                    "pool_build_id": build_id,
                    "template_version": version,
                    "created_at": now,
                    "updated_at": now,
                }
                for campaign_id in ids
            ],
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    log.info(
        "pool.build.reserved",
        extra={
            "build_id": str(build_id),
            "pool_type": pool_type,
            "campaigns": count,
            "pool_level": level,
            "pool_in_flight": pool_in_flight + 1,
        },
    )
    return Reservation(
        build_id=build_id,
        pool_type=pool_type,
        owner_id=owner_id,
        campaign_ids=ids,
        started_at=now,
        level=level,
        remaining=deficit - count,
        pool_in_flight=pool_in_flight + 1,
        in_flight=in_flight + 1,
    )


# ---------------------------------------------------------------------------- the build


def build_reserved(session: Session, template: Campaign, reservation: Reservation) -> list[str]:
    """Seed the reserved campaigns in one transaction that also flips them to `ready`; record a
    `replenished` event per campaign. Returns the ids now ready.

    The flip is guarded: a campaign retired (template version changed) or reaped meanwhile is
    left alone, and when none is left the build is superseded (BuildSuperseded, its rows
    retired). On failure every reserved row still `building` is marked `failed`, one
    `replenish_failed` event records the build, and the error is re-raised."""
    ids = reservation.campaign_ids
    user_id = reservation.owner_id if reservation.pool_type == "user" else None
    started = time.perf_counter()
    try:
        flipped = mark_ready_if_current(session, ids)
        if not flipped:
            session.rollback()
            retire_superseded_build(session, ids)
            log.info("pool.build.superseded", extra={"build_id": str(reservation.build_id)})
            raise BuildSuperseded(
                f"build {reservation.build_id} was made from an old template version"
            )
        targets = list(session.scalars(sa.select(Campaign).where(Campaign.id.in_(flipped))))
        results = CampaignBatchSeeder(session).seed_many(targets, template)
    except BuildSuperseded:
        raise
    except Exception as exc:
        session.rollback()
        session.execute(
            sa.update(Campaign)
            .where(Campaign.id.in_(ids), Campaign.pool_status == "building")
            .values(pool_status="failed")
            .execution_options(synchronize_session=False)
        )
        record_pool_event(
            session,
            PoolEventKind.REPLENISH_FAILED,
            campaign_id=ids[0],
            user_id=user_id,
            pool_type=reservation.pool_type,
            detail={
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "build_id": str(reservation.build_id),
                "campaign_ids": [str(i) for i in ids],
            },
        )
        session.commit()
        raise
    build_ms = round((time.perf_counter() - started) * 1000, 1)
    detail = {
        "method": results[0].method,
        "rows": results[0].total_rows,
        "build_id": str(reservation.build_id),
        "batch": len(results),
        "started_at": reservation.started_at.isoformat(),
        "build_ms": build_ms,
        "in_flight": reservation.in_flight,
        "pool_in_flight": reservation.pool_in_flight,
    }
    # When the campaigns became ready: the seeding transaction's time, not this later write
    # (the slot was free from that commit on, and the events' timeline reads builds in flight
    # from these times: docs/pool.md, "Refills").
    ready_at = max((target.seeded_at for target in targets if target.seeded_at), default=None)
    now = ready_at or utcnow()
    for result in results:
        record_pool_event(
            session,
            PoolEventKind.REPLENISHED,
            campaign_id=result.campaign_id,
            user_id=user_id,
            pool_type=reservation.pool_type,
            duration_ms=result.duration_ms,
            detail=detail,
            created_at=now,
        )
    session.commit()
    return [str(result.campaign_id) for result in results]


def build_pool_campaign(
    session: Session,
    template: Campaign,
    pool_type: str,
    owner_id: uuid.UUID,
    *,
    max_building: int | None = None,
) -> Campaign:
    """Build one pool campaign whatever the pool's level (the bench fills a pool with it;
    refills use `reserve_build`). With `max_building`, a rollout's cap still applies
    (BuildThrottled, nothing written)."""
    reservation = reserve_build(
        session,
        template,
        pool_type,
        owner_id,
        owner_id if pool_type == "user" else None,
        target=UNLIMITED,
        batch_limit=1,
        max_parallel=UNLIMITED,
        rollout_cap=max_building,
    )
    if not isinstance(reservation, Reservation):
        # Neither the target nor the pool's parallel builds are limited: only a rollout's cap
        # refuses, when at least `max_building` builds are in flight.
        assert max_building is not None
        raise BuildThrottled(max_building, max_building)
    [built] = build_reserved(session, template, reservation)
    campaign = session.get(Campaign, uuid.UUID(built))
    assert campaign is not None
    return campaign


# ---------------------------------------------------------------------------- refills


def replenish_pool(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    pool_type: str = "master",
    user_id: uuid.UUID | None = None,
    *,
    progress: Progress | None = None,
    fan_out: bool = False,
) -> ReplenishReport:
    """Bring one pool up to its target, building alongside any other refill of the same pool.

    With `fan_out` (the refill job), a reservation that leaves a deficit (more than K were
    missing) queues helper refills of the pool for idle workers; without it (the CLI, tests)
    this refill builds alone. Either way K campaigns at most per build."""
    if pool_type not in ("master", "user"):
        raise ValueError(f"unknown pool type {pool_type!r}")
    if pool_type == "user" and user_id is None:
        raise ValueError("a user pool needs a user_id")
    if pool_type == "master" and user_id is not None:
        raise ValueError("the master pool has no user_id (its campaigns are the template owner's)")
    config: PoolConfig = load_pool_config(session, settings)
    target = effective_target(session, settings, pool_type, config=config).value
    report = ReplenishReport(pool_type, str(user_id) if user_id else None, target)
    template = find_master_template(session)
    if template is None or template.template_version is None:
        report.skipped = "no_template"
        return report
    if not config.refills_enabled:
        report.skipped = "paused"
        log.info("pool.replenish.skipped", extra={"pool_type": pool_type, "reason": "paused"})
        return report
    timeout = build_timeout(settings)
    owner_id = user_id or template.user_id  # a user pool's gamemaster, else the template owner
    builders = seeding_workers(redis_client) if fan_out else 1
    report.level_before = pool_level(
        session, pool_type, template.template_version, user_id, stale_after=timeout
    )
    missing = max(0, target - report.level_before)
    superseded = 0
    while True:
        if pool_halted(session, pool_type, user_id, config.failure_budget):
            report.skipped = "halted"
            log.error(
                "pool.replenish.halted",
                extra={"pool_type": pool_type, "failure_budget": config.failure_budget},
            )
            break
        reservation = reserve_build(
            session,
            template,
            pool_type,
            owner_id,
            user_id,
            target=target,
            batch_limit=config.build_batch_size,
            max_parallel=config.max_parallel_builds,
            rollout_cap=config.rollout_max_building,
            stale_after=timeout,
        )
        if isinstance(reservation, str):
            if reservation != FULL:
                report.skipped = reservation
                log.info(
                    "pool.replenish.skipped", extra={"pool_type": pool_type, "reason": reservation}
                )
            break
        if fan_out and reservation.remaining > 0:
            _fan_out(redis_client, reservation, config, builders, user_id)
        try:
            built = build_reserved(session, template, reservation)
        except BuildSuperseded:
            superseded += 1
        except Exception:
            report.failed += 1
        else:
            report.built += built
            report.builds += 1
            if progress:
                progress(len(report.built), missing)
        # The version may have changed (an edit, a bump, an import): build the new one.
        template = find_master_template(session)
        if template is None or template.template_version is None or superseded > 3:
            break
    return report


def _fan_out(
    redis_client: redis.Redis,
    reservation: Reservation,
    config: PoolConfig,
    builders: int,
    user_id: uuid.UUID | None,
) -> None:
    """Queue helper refills for the builds that could start now beside this one."""
    per_build = max(1, len(reservation.campaign_ids))
    helpers = min(
        math.ceil(reservation.remaining / per_build),
        config.max_parallel_builds - reservation.pool_in_flight,
        builders - 1,
    )
    if helpers > 0:
        enqueue_refill_helpers(redis_client, reservation.pool_type, user_id, helpers)


def gamemasters_needing_pools(
    session: Session, config: PoolConfig, version: int, user_ids: list[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Active gamemasters whose own pool is below the user target."""
    if config.user_target <= 0:
        return []
    ready = (
        sa.select(sa.func.count())
        .where(
            Campaign.user_id == User.id,
            Campaign.is_pool.is_(True),
            Campaign.pool_type == "user",
            Campaign.pool_status.in_(("ready", "building")),
            Campaign.template_version == version,
        )
        .scalar_subquery()
    )
    stmt = sa.select(User.id).where(
        User.gamemaster.is_(True), User.active.is_(True), ready < config.user_target
    )
    if user_ids is not None:
        stmt = stmt.where(User.id.in_(user_ids))
    return list(session.scalars(stmt.order_by(User.created_at)))


def replenish_all(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    *,
    progress: Progress | None = None,
    fan_out: bool,
) -> list[ReplenishReport]:
    """Refill the master pool, then every gamemaster's own pool that is short; with `fan_out`,
    ask helper workers to share each pool's builds (the refill job does, a direct call says)."""
    reports = [
        replenish_pool(
            session, redis_client, settings, "master", progress=progress, fan_out=fan_out
        )
    ]
    # Without a template version no user pool can be built either; paused or throttled, the
    # user pools would be refused the same way.
    template = find_master_template(session)
    if template is None or template.template_version is None:
        return reports
    if reports[0].skipped in ("throttled", "paused"):
        return reports
    config = load_pool_config(session, settings)
    for user_id in gamemasters_needing_pools(session, config, template.template_version):
        report = replenish_pool(
            session, redis_client, settings, "user", user_id, progress=progress, fan_out=fan_out
        )
        reports.append(report)
        if report.skipped == "throttled":  # the rollout's builds are all taken: stop here
            break
    return reports
