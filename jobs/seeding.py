"""Seeding jobs: `seed_campaign_job` fills one existing, empty campaign with the batch seeder.

Used when a campaign is created asynchronously (`POOL_FALLBACK=async`): the request commits the
empty shell (`seeded_at` NULL) and enqueues this job, whose progress shows in the job's `meta`
(`step`, `done`, `total`) for whoever polls it (the API, rq-dashboard).

The job is idempotent: a campaign that is already seeded (a duplicate or re-run job) is left
alone and the job says so. Two copies of the job running at once are harmless too: on
PostgreSQL the campaign row is locked (`FOR UPDATE`) before seeding, so the second waits and then
finds it seeded; and the seeder's final guarded UPDATE refuses to mark a campaign seeded twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa

from jobs.context import app_context, report_progress

log = logging.getLogger("jobs.seeding")

ATTEMPTS = 3


def seed_campaign_job(campaign_id: str) -> dict[str, Any]:
    """Seed campaign `campaign_id` from the master template; return what was done.

    Returns {"status": "seeded", ...SeedResult...}, {"status": "already_seeded", ...} or
    {"status": "missing", ...} (the campaign was deleted before the job ran). Raises when there
    is no master template or seeding fails; nothing of a failed attempt remains, and a dropped
    database connection is retried (the shell is committed, so starting again is safe)."""
    from portal.appcontext import db_session
    from portal.models import Campaign
    from portal.services.campaigns.records import find_master_template
    from portal.services.infra.retry import is_connection_lost
    from portal.services.seeding.base import SeedingError
    from portal.services.seeding.batch import CampaignBatchSeeder

    cid = uuid.UUID(str(campaign_id))
    context = {"campaign_id": str(cid)}
    with app_context():
        session = db_session()

        def progress(step: str, done: int, total: int) -> None:
            report_progress(step=step, done=done, total=total)

        for attempt in range(1, ATTEMPTS + 1):
            try:
                campaign = session.scalar(
                    sa.select(Campaign).where(Campaign.id == cid).with_for_update()
                )
                if campaign is None:
                    session.rollback()
                    log.warning("jobs.seed.missing", extra=context)
                    return {"status": "missing", "campaign_id": str(cid)}
                if campaign.seeded_at is not None:
                    outcome: dict[str, Any] = {
                        "status": "already_seeded",
                        "campaign_id": str(cid),
                        "method": campaign.seeding_method,
                        "seeded_at": campaign.seeded_at.isoformat(),
                    }
                    session.rollback()
                    log.info("jobs.seed.already_seeded", extra=context)
                    return outcome
                template = find_master_template(session)
                if template is None:
                    raise SeedingError("there is no master template to seed from")
                report_progress(step="started", done=0, total=0, attempt=attempt)
                result = CampaignBatchSeeder(session).seed(campaign, template, progress=progress)
            except Exception as exc:
                session.rollback()
                if is_connection_lost(exc) and attempt < ATTEMPTS:
                    log.warning(
                        "jobs.seed.retry",
                        extra={**context, "attempt": attempt, "error": str(exc).splitlines()[0]},
                    )
                    continue
                raise
            outcome = {
                "status": "seeded",
                "campaign_id": str(result.campaign_id),
                "method": result.method,
                "duration_ms": result.duration_ms,
                "rows": result.rows,
                "total_rows": result.total_rows,
            }
            log.info("jobs.seed.done", extra={**context, "duration_ms": result.duration_ms})
            return outcome
    raise AssertionError("unreachable")  # pragma: no cover
