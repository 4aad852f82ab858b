"""Creating a campaign for a user: from their pool, else the master pool, else by seeding.

This is what `POST /api/v2/campaigns` does. The pool answers in milliseconds; when it is empty
the campaign is batch-seeded inside the request (`POOL_FALLBACK=sync`, complete when returned) or
created empty and seeded by a job (`async`, returned at once). Either way a refill is requested,
and the outcome is recorded in `pool_events` for the hit-rate metrics.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, User
from portal.services.campaigns.records import (
    CampaignError,
    content_counts,
    create_campaign_shell,
    find_master_template,
)
from portal.services.infra.queue import enqueue_replenish, enqueue_seeding
from portal.services.pool.claim import CampaignPoolService, ClaimedCampaign, NameTakenError
from portal.services.pool.config import load_pool_config
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.switches import assignment_on
from portal.services.seeding.batch import CampaignBatchSeeder


class NoTemplateError(CampaignError):
    """No master template exists, so nothing can be seeded (HTTP 503)."""


@dataclass(frozen=True)
class CreatedCampaign:
    campaign_id: uuid.UUID
    source: str
    pending: bool  # True while an async seeding job has not filled it yet
    # Set when the pool served it: the campaign's fields and counts as the claim returned
    # them, so the response needs no second read (see `created_campaign_json`).
    snapshot: ClaimedCampaign | None = None
    counts: dict[str, int] | None = None


def create_campaign(
    session: Session,
    redis_client: redis.Redis,
    settings: Settings,
    user: User,
    name: str,
    description: str | None,
) -> CreatedCampaign:
    """Pool first, then the configured fallback. Raises NameTakenError / NoTemplateError."""
    started = time.perf_counter()
    user_id, gamemaster = user.id, user.gamemaster  # read before a commit expires `user`
    # POOL_ASSIGNMENT=off skips the claim; the runtime switch is checked inside the claim.
    assignment = (
        CampaignPoolService(session).assign_pool_campaign(user, name, description)
        if settings.pool_assignment
        else None
    )
    if assignment is not None:
        refill_owner = user_id if assignment.pool_type == "user" else None
        enqueue_replenish(redis_client, assignment.pool_type, refill_owner)
        return CreatedCampaign(
            assignment.campaign_id,
            assignment.source,
            pending=False,
            snapshot=assignment.campaign,
            counts=assignment.counts,
        )

    template = find_master_template(session)
    if template is None:
        raise NoTemplateError("no master template: run `flask --app app template generate`")
    try:
        shell = create_campaign_shell(session, user, name, description)
    except CampaignError:
        session.rollback()
        raise NameTakenError("has already been taken") from None
    campaign_id = shell.id
    pending = False
    try:
        if settings.pool_fallback == "async" and _enqueue_seeding(session, redis_client, shell):
            pending = True
        else:
            CampaignBatchSeeder(session).seed(shell, template)
    except IntegrityError:
        session.rollback()
        raise NameTakenError("has already been taken") from None
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    # Why the pool did not serve it, and whether the user has a pool to refill: read on the
    # slow path only, after the work.
    config = load_pool_config(session, settings)
    reason = "pool_empty" if assignment_on(session, settings, config) else "assignment_off"
    record_pool_event(
        session,
        PoolEventKind.FALLBACK,
        campaign_id=campaign_id,
        user_id=user_id,
        duration_ms=duration_ms,
        detail={"mode": "async" if pending else "sync", "reason": reason},
    )
    session.commit()
    enqueue_replenish(redis_client, "master")
    if gamemaster and config.user_target > 0:  # no user pools: a refill job would find nothing
        enqueue_replenish(redis_client, "user", user_id)
    return CreatedCampaign(campaign_id, "seeded", pending=pending)


def _enqueue_seeding(session: Session, redis_client: redis.Redis, shell: Campaign) -> bool:
    """Commit the empty campaign and queue its seeding; False (nothing queued) when the queue is
    unreachable, so the caller seeds synchronously."""
    session.commit()
    return enqueue_seeding(redis_client, shell.id) is not None


def created_campaign_json(session: Session, created: CreatedCampaign) -> dict[str, object]:
    """The API answer for a campaign just created: from the claim's snapshot when the pool
    served it, else read back from the database."""
    if created.snapshot is not None:
        return campaign_json(session, created.snapshot, created.source, counts=created.counts)
    campaign = session.get_one(Campaign, created.campaign_id)
    return campaign_json(session, campaign, created.source, created.pending)


def campaign_json(
    session: Session,
    campaign: Campaign | ClaimedCampaign,
    source: str | None = None,
    pending: bool = False,
    counts: dict[str, int] | None = None,
) -> dict[str, object]:
    """The API representation of a campaign (docs/api.md): `campaign` is a Campaign or the
    pool claim's snapshot of one; `counts` are queried unless given."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    body: dict[str, object] = {
        "id": str(campaign.id),
        "name": campaign.name,
        "description": campaign.description,
        "gamemaster_id": str(campaign.user_id),
        "active": campaign.active,
        "created_at": iso(campaign.created_at),
        "updated_at": iso(campaign.updated_at),
        "activated_at": iso(campaign.activated_at),
        "seeded_at": iso(campaign.seeded_at),
        "entity_class": "Campaign",
        "seeding_status": "pending" if pending or campaign.seeded_at is None else "complete",
        "counts": counts
        if counts is not None
        else content_counts(session, campaign.id, with_images=True),
    }
    if source is not None:
        body["source"] = source
    return body
