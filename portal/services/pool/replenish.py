"""Refilling pools: build ready campaigns with the batch seeder until a pool reaches its target.

A pool campaign is created in state `building` (committed, so the dashboard shows it and a reaper
can find it if its builder dies) and becomes `ready` only in the same commit that writes its
content, so a crash can never leave a half-built campaign marked ready. Refills of one pool are
serialized by a Redis lock held for the whole refill and the level is counted inside the lock, so
any number of concurrent triggers never overfill. A pool whose builds keep failing stops after its
failure budget and reports it instead of burning the database in a retry loop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import redis
import sqlalchemy as sa
from redis.exceptions import LockError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, PoolEvent, User, utcnow
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import REFILL_JOB_TIMEOUT_S
from portal.services.pool.config import PoolConfig, load_pool_config
from portal.services.pool.demand import effective_target
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.rollout import (
    BuildSuperseded,
    BuildThrottled,
    admit_build,
    mark_ready_if_current,
    retire_superseded_build,
)
from portal.services.seeding.batch import CampaignBatchSeeder

log = logging.getLogger("portal.pool")

# The default build timeout (POOL_BUILD_TIMEOUT) is the refill job's: the refill lock's TTL,
# renewed after each build.
LOCK_TIMEOUT_S = REFILL_JOB_TIMEOUT_S
BUILD_STALE_AFTER = timedelta(seconds=LOCK_TIMEOUT_S)
HALT_COOLDOWN = timedelta(minutes=15)
Progress = Callable[[int, int], None]


@dataclass
class ReplenishReport:
    pool_type: str
    user_id: str | None
    target: int
    level_before: int = 0
    built: list[str] = field(default_factory=list)
    failed: int = 0
    # why it stopped short: "locked", "halted", "no_template", "throttled" (a rollout's cap),
    # "lock_lost" (a build outlived POOL_BUILD_TIMEOUT)
    skipped: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "pool_type": self.pool_type,
            "user_id": self.user_id,
            "target": self.target,
            "level_before": self.level_before,
            "built": len(self.built),
            "campaign_ids": self.built,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def lock_name(pool_type: str, user_id: uuid.UUID | None) -> str:
    return f"campaign-pool:refill:{pool_type}:{user_id or 'all'}"


def build_timeout(settings: Settings | None) -> timedelta:
    """How long one build may take (POOL_BUILD_TIMEOUT): the refill lock lives this long past
    each build, and a `building` row older than this no longer counts as on its way."""
    return timedelta(seconds=settings.pool_build_timeout_s if settings else LOCK_TIMEOUT_S)


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
        Campaign.is_pool.is_(True),
        Campaign.pool_type == pool_type,
        Campaign.template_version == version,
        sa.or_(
            Campaign.pool_status == "ready",
            sa.and_(Campaign.pool_status == "building", Campaign.pool_created_at > stale_before),
        ),
    )
    if user_id is not None:
        stmt = stmt.where(Campaign.user_id == user_id)
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


def build_pool_campaign(
    session: Session,
    template: Campaign,
    pool_type: str,
    owner_id: uuid.UUID,
    *,
    max_building: int | None = None,
    stale_after: timedelta = BUILD_STALE_AFTER,
) -> Campaign:
    """Create one pool campaign: a committed `building` row, then content + `ready` in one commit.

    With `max_building`, the build is admitted only within the rollout's cap (BuildThrottled,
    nothing written, otherwise; see portal.services.pool.rollout). The flip to `ready` is guarded:
    if the template version changed during the build, the campaign was retired and nothing
    is committed (BuildSuperseded). On failure the row is marked `failed` (content rolled
    back) and the error re-raised."""
    now = utcnow()
    campaign = Campaign(
        id=uuid.uuid4(),
        user_id=owner_id,
        name=f"Pool campaign {uuid.uuid4().hex[:12]}",
        description=template.description,
        is_pool=True,
        pool_type=pool_type,
        pool_status="building",
        pool_created_at=now,
        template_version=template.template_version,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    in_flight = None
    if max_building is not None and template.template_version is not None:
        session.flush()
        try:
            in_flight = admit_build(
                session, template.template_version, max_building, now - stale_after
            )
        except BuildThrottled:
            session.rollback()
            raise
    session.commit()
    campaign_id = campaign.id
    log.info("pool.build.started", extra={"campaign_id": str(campaign_id), "pool_type": pool_type})
    try:
        if not mark_ready_if_current(session, campaign_id):
            session.rollback()
            retire_superseded_build(session, campaign_id)
            log.info("pool.build.superseded", extra={"campaign_id": str(campaign_id)})
            raise BuildSuperseded(f"campaign {campaign_id} was built from an old template version")
        result = CampaignBatchSeeder(session).seed(campaign, template)
    except BuildSuperseded:
        raise
    except Exception as exc:
        session.rollback()
        session.execute(
            sa.update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.pool_status == "building")
            .values(pool_status="failed")
        )
        record_pool_event(
            session,
            PoolEventKind.REPLENISH_FAILED,
            campaign_id=campaign_id,
            user_id=owner_id if pool_type == "user" else None,
            pool_type=pool_type,
            detail={"error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        session.commit()
        raise
    detail: dict[str, object] = {"method": result.method, "rows": result.total_rows}
    if in_flight is not None:
        detail["in_flight"] = in_flight
    record_pool_event(
        session,
        PoolEventKind.REPLENISHED,
        campaign_id=campaign_id,
        user_id=owner_id if pool_type == "user" else None,
        pool_type=pool_type,
        duration_ms=result.duration_ms,
        detail=detail,
    )
    session.commit()
    return campaign


def replenish_pool(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    pool_type: str = "master",
    user_id: uuid.UUID | None = None,
    *,
    progress: Progress | None = None,
) -> ReplenishReport:
    """Bring one pool up to its target, serialized with any other refill of the same pool."""
    if pool_type not in ("master", "user"):
        raise ValueError(f"unknown pool type {pool_type!r}")
    if pool_type == "user" and user_id is None:
        raise ValueError("a user pool needs a user_id")
    config: PoolConfig = load_pool_config(session, settings)
    target = effective_target(session, settings, pool_type, config=config).value
    report = ReplenishReport(pool_type, str(user_id) if user_id else None, target)
    template = find_master_template(session)
    if template is None or template.template_version is None:
        report.skipped = "no_template"
        return report
    timeout = build_timeout(settings)
    lock = redis_client.lock(lock_name(pool_type, user_id), timeout=timeout.total_seconds())
    if not lock.acquire(blocking=False):
        report.skipped = "locked"
        log.info("pool.replenish.skipped", extra={"pool_type": pool_type, "reason": "locked"})
        return report
    try:
        # (a user pool always has its user_id: checked above)
        owner_id = user_id if pool_type == "user" and user_id is not None else template.user_id
        report.level_before = level = pool_level(
            session, pool_type, template.template_version, user_id, stale_after=timeout
        )
        missing = max(0, target - level)
        superseded = 0
        while level < target:
            if pool_halted(session, pool_type, user_id, config.failure_budget):
                report.skipped = "halted"
                log.error(
                    "pool.replenish.halted",
                    extra={"pool_type": pool_type, "failure_budget": config.failure_budget},
                )
                break
            try:
                campaign = build_pool_campaign(
                    session,
                    template,
                    pool_type,
                    owner_id,
                    max_building=config.rollout_max_building,
                    stale_after=timeout,
                )
            except BuildThrottled as exc:
                report.skipped = "throttled"
                log.info("pool.replenish.throttled", extra={"reason": str(exc)})
                break
            except BuildSuperseded:
                superseded += 1
            except Exception:
                report.failed += 1
                continue
            else:
                report.built.append(str(campaign.id))
                if progress:
                    progress(len(report.built), missing)
            # The version may have changed (an edit, a bump, an import): build the new one.
            template = find_master_template(session)
            if template is None or template.template_version is None or superseded > 3:
                break
            level = pool_level(
                session, pool_type, template.template_version, user_id, stale_after=timeout
            )
            try:
                lock.extend(timeout.total_seconds(), replace_ttl=True)
            except LockError:  # a build outlived the timeout: another refill may own the pool
                report.skipped = "lock_lost"
                break
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("pool.replenish.lock_lost", extra={"pool_type": pool_type})
    return report


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
) -> list[ReplenishReport]:
    """Refill the master pool, then every gamemaster's own pool that is short."""
    reports = [replenish_pool(session, redis_client, settings, "master", progress=progress)]
    version = find_master_template(session)
    if version is None or reports[0].skipped == "throttled":
        return reports
    config = load_pool_config(session, settings)
    for user_id in gamemasters_needing_pools(session, config, version.template_version or 0):
        report = replenish_pool(session, redis_client, settings, "user", user_id, progress=progress)
        reports.append(report)
        if report.skipped == "throttled":  # the rollout's builds are all taken: stop here
            break
    return reports
