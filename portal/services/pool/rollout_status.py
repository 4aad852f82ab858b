"""The `rollout` block of the pool payload (`/admin/api/pool`, `pool_update`, `pool status`).

After a template version change an operator wants to know one thing: how far the rebuild
is. So this says, against the pool status it extends: the current version and the change
that led to it, campaigns ready at the current version out of all targets (master pool plus
every gamemaster's pool), builds in flight against the rollout's cap, and the old-version
campaigns still around (stale ones about to be retired, retired ones awaiting clean-up).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign, PoolEvent
from portal.services.pool.events import PoolEventKind
from portal.services.pool.rollout import OLD_STATES, old_version


def _old_campaigns(session: Session, version: int | None) -> dict[str, int]:
    counts = dict.fromkeys(OLD_STATES, 0)
    if version is None:
        return counts
    rows = session.execute(
        sa.select(Campaign.pool_status, sa.func.count())
        .where(
            Campaign.is_pool.is_(True),
            Campaign.pool_status.in_(OLD_STATES),
            old_version(version),
        )
        .group_by(Campaign.pool_status)
    )
    for status, count in rows:
        if status is not None:  # always: the WHERE picks statuses in OLD_STATES
            counts[status] = count
    return counts


def _last_change(session: Session) -> tuple[dict[str, Any], str | None]:
    row = session.execute(
        sa.select(PoolEvent.detail, PoolEvent.created_at)
        .where(PoolEvent.kind == PoolEventKind.TEMPLATE_VERSION)
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return {}, None
    return (row.detail if isinstance(row.detail, dict) else {}), row.created_at.isoformat()


def rollout_status(session: Session, status: dict[str, Any]) -> dict[str, Any]:
    """The rollout block for `status` (the `pool.status.pool_status` payload)."""
    version = status["template_version"]
    pools = status["pools"]
    master, user = pools["master"], pools["user"]
    user_target = user["target"] * user["gamemasters"]
    target = master["target"] + user_target
    # Beyond its target a pool's extra campaigns do not make up for another pool's missing ones.
    ready = min(master["ready"], master["target"]) + min(user["ready"], user_target)
    old = _old_campaigns(session, version)
    change, changed_at = _last_change(session)
    stale = old["ready"] + old["building"]
    return {
        "template_version": version,
        "previous_version": change.get("previous"),
        "reason": change.get("reason"),
        "changed_at": changed_at,
        "in_progress": stale + old["retired"] > 0,
        "ready": ready,
        "target": target,
        "progress": round(min(1.0, ready / target), 4) if target else 1.0,
        "building": master["building"] + user["building"],
        "max_building": status["config"]["rollout_max_building"],
        "stale": stale,
        "retired": old["retired"],
        "stale_remaining": stale + old["retired"],
    }
