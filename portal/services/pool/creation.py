"""Creating a campaign for a user: from their pool, else the master pool, else by seeding.

This is what `POST /api/v2/campaigns` does. The pool answers in milliseconds; when it is empty
the campaign is batch-seeded inside the request (`POOL_FALLBACK=sync`, complete when returned) or
created empty and seeded by a job (`async`, returned at once). Either way a refill is requested,
and the outcome is recorded in `pool_events` for the hit-rate metrics. Once the campaign is
complete (at once when served by the pool or seeded in the request) `{"seeding_status":
"complete"}` is pushed to the owner's Phoenix channel: the web client's create form waits for it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import Campaign, User
from portal.services.campaigns.records import (
    CampaignError,
    create_campaign_shell,
    find_master_template,
)
from portal.services.images.store import ImageStore
from portal.services.infra.channels import COMPLETE, publish_seeding
from portal.services.infra.queue import enqueue_replenish, enqueue_seeding
from portal.services.pool.claim import CampaignPoolService, ClaimedCampaign, NameTakenError
from portal.services.pool.client_campaigns import (
    CampaignImages,
    campaign_json,
    read_campaign_images,
)
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
    images: CampaignImages | None = None  # read in the claim's transaction
    # For the metrics (portal.services.monitoring.prometheus): how long the claim took and how
    # long the campaign had waited in its pool (pool-served), or the fallback's mode (seeded).
    claim_ms: float | None = None
    pool_age_s: float | None = None
    fallback_mode: str | None = None


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
        CampaignPoolService(session).assign_pool_campaign(user, name, description, commit=False)
        if settings.pool_assignment
        else None
    )
    if assignment is not None:
        # The answer shows the campaign's image: read it before the claim commits, since a read
        # after the commit would take a second connection from the pool (docs/performance.md).
        images = read_campaign_images(session, [assignment.campaign_id])
        session.commit()  # the claim and its event, together
        refill_owner = user_id if assignment.pool_type == "user" else None
        publish_seeding(redis_client, assignment.campaign_id, user_id, COMPLETE)
        enqueue_replenish(redis_client, assignment.pool_type, refill_owner)
        waited = assignment.pool_created_at
        return CreatedCampaign(
            assignment.campaign_id,
            assignment.source,
            pending=False,
            snapshot=assignment.campaign,
            counts=assignment.counts,
            images=images,
            claim_ms=assignment.duration_ms,
            pool_age_s=(assignment.activated_at - waited).total_seconds() if waited else None,
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
    if not pending:
        publish_seeding(redis_client, campaign_id, user_id, COMPLETE)
    enqueue_replenish(redis_client, "master")
    if gamemaster and config.user_target > 0:  # no user pools: a refill job would find nothing
        enqueue_replenish(redis_client, "user", user_id)
    mode = "async" if pending else "sync"
    return CreatedCampaign(campaign_id, "seeded", pending=pending, fallback_mode=mode)


def _enqueue_seeding(session: Session, redis_client: redis.Redis, shell: Campaign) -> bool:
    """Commit the empty campaign and queue its seeding; False (nothing queued) when the queue is
    unreachable, so the caller seeds synchronously."""
    session.commit()
    return enqueue_seeding(redis_client, shell.id) is not None


def created_campaign_json(
    session: Session,
    created: CreatedCampaign,
    *,
    owner_view: dict[str, Any],
    store: ImageStore,
    redis_client: redis.Redis | None,
) -> dict[str, object]:
    """The API answer for a campaign just created: from the claim's snapshot when the pool
    served it, else read back from the database. `owner_view` is the owner's `user_view`, taken
    before the creation committed (after it, reading the user would cost a query)."""
    campaign: Campaign | ClaimedCampaign = (
        created.snapshot
        if created.snapshot is not None
        else session.get_one(Campaign, created.campaign_id)
    )
    return campaign_json(
        session,
        campaign,
        store=store,
        redis_client=redis_client,
        owner_view=owner_view,
        counts=created.counts,
        images=created.images,
        source=created.source,
    )
