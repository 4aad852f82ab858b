"""The pool's campaigns as a list: one page of them, filtered by pool state and pool type.

What the portal's campaign list shows (`/admin/campaigns`). It speaks the pool's own
vocabulary, so it lives with the pool rather than with the dashboard's figures: the states of
`pool_status`, and "stale", a ready campaign of an old template version (it will never be
handed out, so it is listed apart from the usable ready ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign
from portal.services.campaigns.records import find_master_template
from portal.services.pool.rollout import old_version

LIST_STATUSES = ("ready", "building", "failed", "retired", "assigned", "stale")
LIST_POOL_TYPES = ("master", "user")
PAGE_SIZE = 50


@dataclass(frozen=True)
class CampaignPage:
    rows: list[Campaign]
    total: int
    page: int
    pages: int
    status: str | None
    pool_type: str | None


def pool_campaigns_page(
    session: Session,
    *,
    status: str | None = None,
    pool_type: str | None = None,
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> CampaignPage:
    """One page of pool campaigns (and campaigns that came from the pool), newest first.

    Unknown filter values are ignored rather than refused: they come from a URL an admin may
    have edited, and showing everything is the least surprising answer."""
    status = status if status in LIST_STATUSES else None
    pool_type = pool_type if pool_type in LIST_POOL_TYPES else None
    template = find_master_template(session)
    version = template.template_version if template else None
    where: list[Any] = [Campaign.pool_status.is_not(None)]
    if status == "stale":
        where += [Campaign.is_pool.is_(True), Campaign.pool_status == "ready"]
        if version is not None:
            where.append(old_version(version))
    elif status == "ready" and version is not None:
        where += [Campaign.pool_status == "ready", Campaign.template_version == version]
    elif status is not None:
        where.append(Campaign.pool_status == status)
    if pool_type is not None:
        where.append(Campaign.pool_type == pool_type)
    total = session.scalar(sa.select(sa.func.count()).select_from(Campaign).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        sa.select(Campaign)
        .where(*where)
        .order_by(Campaign.pool_created_at.desc().nulls_last(), Campaign.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return CampaignPage(list(rows), total, page, pages, status, pool_type)
