"""Clean-up: delete the pool campaigns nobody will use, with all their content, and the blobs
that no attachment uses any more.

What goes: pool campaigns that `failed` or were `retired`, and `ready` ones abandoned in the
pool past a maximum age (a pool that never drains keeps its oldest campaigns forever
otherwise). What never goes: the master template, and anything handed to a user (`assigned`,
`is_pool` false). Each campaign is deleted in its own transaction behind a guarded UPDATE that
re-checks it is still eligible, so a claim racing the clean-up either wins (and the campaign is
kept) or loses (and the claim takes another one).

Content rows follow the campaign through ON DELETE CASCADE, but image attachments and positions
are polymorphic (no foreign key), so they are deleted first, record type by record type. Blobs
are shared between campaigns, so a blob freed here is purged only when no attachment anywhere
still uses it (`purge_unused_blobs` checks that inside its DELETE), and its stored file (ImageKit
or local) is deleted only after the row is gone.

Builds stuck in `building` past their timeout (their worker died) are reaped here too: marked
`failed`, and so deleted by the same pass. The monitor reaps them every minute as well.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import (
    RECORD_TYPES,
    Campaign,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    PoolEvent,
)
from portal.models import utcnow as _utcnow
from portal.services.accounts.cli_auth import prune_codes
from portal.services.accounts.jwt_tokens import prune_denylist
from portal.services.images.blobs import detach_images, purge_unused_blobs
from portal.services.images.store import ImageStore
from portal.services.infra.database import rowcount
from portal.services.infra.queue import enqueue_replenish
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.replenish import build_timeout

log = logging.getLogger("portal.cleanup")


def reap_after(settings: Settings | None) -> timedelta:
    """How long a build may stay in `building` before its builder is certainly gone: the build
    timeout (after which its rows stop counting towards the pool's level) plus a margin of
    half of it, at most 5 minutes. 15 minutes with the default POOL_BUILD_TIMEOUT of 10."""
    timeout = build_timeout(settings)
    return timeout + min(timedelta(minutes=5), timeout / 2)


REAP_BUILDING_AFTER = reap_after(None)
MAX_READY_AGE = timedelta(days=30)
# Blobs without attachments younger than this are left alone: an upload may be about to be
# attached by a transaction that has not committed yet.
ORPHAN_GRACE = timedelta(hours=1)
SNAPSHOT_RETENTION = timedelta(days=30)
BATCH = 200
DELETABLE = ("failed", "retired")


@dataclass
class CleanupReport:
    reaped: list[str] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    attachments_deleted: int = 0
    positions_deleted: int = 0
    rows_deleted: int = 0
    blobs_deleted: int = 0
    files_deleted: int = 0
    file_errors: list[dict[str, str]] = field(default_factory=list)
    snapshots_pruned: int = 0
    refill_job: str | None = None

    @property
    def campaigns_deleted(self) -> int:
        return len(self.campaigns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaigns_deleted": self.campaigns_deleted,
            "reaped": len(self.reaped),
            "attachments_deleted": self.attachments_deleted,
            "positions_deleted": self.positions_deleted,
            "rows_deleted": self.rows_deleted,
            "blobs_deleted": self.blobs_deleted,
            "files_deleted": self.files_deleted,
            "file_errors": len(self.file_errors),
            "snapshots_pruned": self.snapshots_pruned,
            "refill_job": self.refill_job,
            "campaigns": self.campaigns,
            "reaped_ids": self.reaped,
            "file_error_details": self.file_errors,
        }


def reap_stuck_builds(
    session: Session, *, now: datetime | None = None, older_than: timedelta = REAP_BUILDING_AFTER
) -> list[uuid.UUID]:
    """Mark pool campaigns stuck in `building` since before `now - older_than` as `failed`,
    with a `replenish_failed` event per build (a dead builder's 1..K campaigns are one failed
    build, as its failure would have been); commit. Returns their ids."""
    now = now or _utcnow()
    rows = session.execute(
        sa.update(Campaign)
        .where(
            Campaign.is_pool.is_(True),
            Campaign.pool_status == "building",
            Campaign.pool_created_at < now - older_than,
        )
        .values(pool_status="failed", updated_at=now)
        .returning(
            Campaign.id,
            Campaign.pool_type,
            Campaign.user_id,
            Campaign.pool_created_at,
            Campaign.pool_build_id,
        )
        .execution_options(synchronize_session=False)
    ).all()
    builds: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        builds.setdefault(row.pool_build_id or row.id, []).append(row)
    for build_id, members in builds.items():
        first = members[0]
        stuck_s = (
            round((now - first.pool_created_at).total_seconds()) if first.pool_created_at else None
        )
        detail: dict[str, Any] = {
            "error": f"reaped: stuck in building for {stuck_s} s",
            "reaped": True,
        }
        if first.pool_build_id is not None:
            detail.update(build_id=str(build_id), campaign_ids=[str(m.id) for m in members])
        record_pool_event(
            session,
            PoolEventKind.REPLENISH_FAILED,
            campaign_id=first.id,
            user_id=first.user_id if first.pool_type == "user" else None,
            pool_type=first.pool_type,
            detail=detail,
            created_at=now,
        )
    session.commit()
    return [row.id for row in rows]


def _eligible(ready_before: datetime) -> sa.ColumnElement[bool]:
    """The guard every deletion re-checks: a pool campaign, not the template, and failed,
    retired, or ready since before `ready_before`."""
    return sa.and_(
        Campaign.is_pool.is_(True),
        Campaign.is_master_template.is_(False),
        sa.or_(
            Campaign.pool_status.in_(DELETABLE),
            sa.and_(Campaign.pool_status == "ready", Campaign.pool_created_at < ready_before),
        ),
    )


def delete_pool_campaign(
    session: Session, campaign_id: uuid.UUID, *, ready_before: datetime, now: datetime
) -> tuple[dict[str, int], set[uuid.UUID]] | None:
    """Delete one eligible pool campaign with all its content (no commit).

    Returns (counts, blob ids it used), or None when the campaign is no longer eligible (claimed
    or deleted meanwhile). The guarded UPDATE both re-checks eligibility and takes the row lock,
    and retires an abandoned ready campaign so no claim can pick it from here on."""
    locked = session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id, _eligible(ready_before))
        .values(pool_status="retired", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(locked) != 1:
        return None
    return delete_campaign_content(session, campaign_id)


def delete_campaign_content(
    session: Session, campaign_id: uuid.UUID
) -> tuple[dict[str, int], set[uuid.UUID]]:
    """Delete a campaign row with all its content, image attachments and positions (no
    commit): the pool clean-up and a user deleting a campaign (`DELETE /api/v2/campaigns/<id>`)
    both end here. Returns (counts, ids of the blobs it used); the blobs stay, since other
    campaigns may share them, until `purge_unused_blobs` finds them unused."""
    counts = {"attachments": 0, "positions": 0, "rows": 0}
    blob_ids: set[uuid.UUID] = set()
    for record_type, model in RECORD_TYPES.items():
        id_column = model.id if issubclass(model, Campaign) else model.campaign_id
        ids = list(session.scalars(sa.select(model.id).where(id_column == campaign_id)))
        if not ids:
            continue
        if model is not Campaign:
            counts["rows"] += len(ids)
        before = session.scalar(
            sa.select(sa.func.count()).where(
                ImageAttachment.record_type == record_type, ImageAttachment.record_id.in_(ids)
            )
        )
        blob_ids |= detach_images(session, record_type, ids)
        counts["attachments"] += before or 0
        positions = session.execute(
            sa.delete(ImagePosition)
            .where(
                ImagePosition.positionable_type == record_type,
                ImagePosition.positionable_id.in_(
                    sa.select(model.id).where(id_column == campaign_id)
                ),
            )
            .execution_options(synchronize_session=False)
        )
        counts["positions"] += rowcount(positions) or 0
    session.execute(
        sa.delete(Campaign)
        .where(Campaign.id == campaign_id)
        .execution_options(synchronize_session=False)
    )
    return counts, blob_ids


def _orphan_blob_ids(session: Session, older_than: datetime, limit: int) -> list[uuid.UUID]:
    used = sa.select(ImageAttachment.id).where(ImageAttachment.blob_id == ImageBlob.id)
    return list(
        session.scalars(
            sa.select(ImageBlob.id)
            .where(~sa.exists(used), ImageBlob.created_at < older_than)
            .limit(limit)
        )
    )


def cleanup_pool(
    session: Session,
    settings: Settings | None = None,
    redis_client: redis.Redis | None = None,
    *,
    store: ImageStore | None = None,
    now: datetime | None = None,
    max_ready_age: timedelta = MAX_READY_AGE,
    limit: int = BATCH,
) -> CleanupReport:
    """Reap stuck builds, delete failed/retired/abandoned pool campaigns (up to `limit`), purge
    the blobs they freed and blobs orphaned for longer than ORPHAN_GRACE, and prune old
    monitor snapshots. With `redis_client`, queue a refill when ready campaigns were deleted.

    `store` defaults to the current app's image store (the portal's quick action runs inside
    a request); jobs and the CLI pass it explicitly."""
    if store is None:
        from portal.services.images.backend import get_image_store

        store = get_image_store()
    now = now or _utcnow()
    ready_before = now - max_ready_age
    reaped = reap_stuck_builds(session, now=now, older_than=reap_after(settings))
    report = CleanupReport(reaped=[str(i) for i in reaped])
    candidates = session.execute(
        sa.select(Campaign.id, Campaign.pool_status, Campaign.pool_type, Campaign.user_id)
        .where(_eligible(ready_before))
        .order_by(Campaign.pool_created_at, Campaign.id)
        .limit(limit)
    ).all()
    freed: set[uuid.UUID] = set()
    removed_ready = False
    for candidate in candidates:
        try:
            outcome = delete_pool_campaign(
                session, candidate.id, ready_before=ready_before, now=now
            )
        except Exception:
            session.rollback()
            log.exception("pool.cleanup.delete_failed", extra={"campaign_id": str(candidate.id)})
            continue
        if outcome is None:
            session.rollback()
            continue
        counts, blob_ids = outcome
        reason = "abandoned" if candidate.pool_status == "ready" else candidate.pool_status
        record_pool_event(
            session,
            PoolEventKind.CLEANED,
            campaign_id=candidate.id,
            user_id=candidate.user_id if candidate.pool_type == "user" else None,
            pool_type=candidate.pool_type,
            detail={"reason": reason, **counts},
            created_at=now,
        )
        session.commit()
        freed |= blob_ids
        removed_ready = removed_ready or candidate.pool_status == "ready"
        report.campaigns.append(
            {"id": str(candidate.id), "pool_type": candidate.pool_type, "reason": reason, **counts}
        )
        report.attachments_deleted += counts["attachments"]
        report.positions_deleted += counts["positions"]
        report.rows_deleted += counts["rows"]
    for unused in (freed, _orphan_blob_ids(session, now - ORPHAN_GRACE, 5000)):
        if not unused:
            continue
        purged = purge_unused_blobs(session, store, unused)
        report.blobs_deleted += purged["blobs_deleted"]
        report.files_deleted += purged["files_deleted"]
        report.file_errors += purged["file_errors"]
    pruned = session.execute(
        sa.delete(PoolEvent)
        .where(
            PoolEvent.kind == PoolEventKind.SNAPSHOT,
            PoolEvent.created_at < now - SNAPSHOT_RETENTION,
        )
        .execution_options(synchronize_session=False)
    )
    report.snapshots_pruned = rowcount(pruned) or 0
    # Sign-in leftovers past their expiry: refused by their own dates anyway.
    prune_denylist(session, now)
    prune_codes(session, now)
    session.commit()
    if removed_ready and redis_client is not None:
        report.refill_job = enqueue_replenish(redis_client, "all")
    log.info(
        "pool.cleanup.done",
        extra={k: v for k, v in report.as_dict().items() if isinstance(v, int | str)},
    )
    return report
