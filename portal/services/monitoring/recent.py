"""The dashboard's "latest" lists: the last pool hits with their campaigns, and the last admin
quick actions. Read from `pool_events` through the (kind, created_at) index, LIMITed, newest
first; each row is ready for the template."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign, PoolEvent, User
from portal.services.pool.events import PoolEventKind


def recent_assignments(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest pool hits with their campaign: when it was built (pool_created_at), when it
    was handed out (activated_at) and how long it waited in the pool."""
    rows = session.execute(
        sa.select(
            PoolEvent.created_at,
            PoolEvent.pool_type,
            PoolEvent.duration_ms,
            Campaign.id,
            Campaign.name,
            Campaign.pool_created_at,
            Campaign.activated_at,
            User.email,
        )
        .select_from(PoolEvent)
        .outerjoin(Campaign, Campaign.id == PoolEvent.campaign_id)
        .outerjoin(User, User.id == PoolEvent.user_id)
        .where(PoolEvent.kind == PoolEventKind.ASSIGNED)
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    out = []
    for row in rows:
        in_pool = None
        if row.pool_created_at and row.activated_at:
            in_pool = (row.activated_at - row.pool_created_at).total_seconds()
        out.append(
            {
                "at": row.created_at,
                "pool_type": row.pool_type,
                "latency_ms": row.duration_ms,
                "campaign_id": row.id,
                "name": row.name,
                "owner": row.email,
                "pool_created_at": row.pool_created_at,
                "activated_at": row.activated_at,
                "time_in_pool_s": in_pool,
            }
        )
    return out


def recent_actions(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The latest admin quick actions, as recorded in pool_events (kind "action")."""
    rows = session.execute(
        sa.select(PoolEvent.created_at, PoolEvent.detail)
        .where(PoolEvent.kind == PoolEventKind.ACTION)
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {"at": row.created_at, **(row.detail if isinstance(row.detail, dict) else {})}
        for row in rows
    ]
