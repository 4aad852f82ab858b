"""The pool's two switches: assignment (the kill switch) and refills (pause).

* **Assignment off**: every create takes the fallback path (seeded in the request, or by a job
  with `POOL_FALLBACK=async`) and nothing is claimed from any pool. It is off when the
  environment says so (`POOL_ASSIGNMENT=off`, read at start: a deploy-level switch no admin can
  override) or when the runtime setting `assignment_enabled` is 0 (the portal's *Pool switches*
  action, `flask --app app pool switch assignment off`): on only when both are on. The claim
  statement itself checks the runtime setting, so a claim that starts after the switch
  committed takes nothing, with no extra round trip on the claim path.
* **Refills paused** (`refills_enabled` = 0): no pool campaign is built; claims go on while
  the pool lasts. Independent of assignment: switching assignment off keeps the pool full for
  when it comes back, pausing refills stops the database work of building.

Every change is a `switch` pool event (`{switch, enabled, previous, actor, actor_id,
reason}`), so the dashboard, `/health` and the history say since when and who
(docs/operations.md, "Rollback: switch the pool off").
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, PoolSetting, utcnow
from portal.services.pool.config import PoolConfig, load_pool_config, set_pool_setting

log = logging.getLogger("portal.pool")

# switch name -> its runtime setting
SWITCH_SETTINGS = {"assignment": "assignment_enabled", "refills": "refills_enabled"}
ASSIGNMENT_SETTING = SWITCH_SETTINGS["assignment"]


def assignment_off_clause() -> sa.ColumnElement[bool]:
    """True while the runtime kill switch is off: embedded in the claim statement, so the
    switch and the claim are read in the same snapshot."""
    return sa.exists(
        sa.select(PoolSetting.key).where(
            PoolSetting.key == ASSIGNMENT_SETTING, PoolSetting.value == 0
        )
    )


def assignment_on(session: Session, settings: Settings, config: PoolConfig | None = None) -> bool:
    """Whether creates may claim from the pools now (environment and runtime both on)."""
    if not settings.pool_assignment:
        return False
    config = config or load_pool_config(session, settings)
    return bool(config.assignment_enabled)


def _last_changes(session: Session) -> dict[str, dict[str, Any]]:
    """The latest `switch` event of each switch."""
    latest: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        sa.select(PoolEvent.detail, PoolEvent.created_at)
        .where(PoolEvent.kind == "switch")
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(50)
    )
    for detail, created_at in rows:
        name = (detail or {}).get("switch")
        if name in SWITCH_SETTINGS and name not in latest:
            latest[name] = {
                "at": created_at.isoformat(),
                "by": detail.get("actor"),
                "reason": detail.get("reason"),
            }
    return latest


def switch_states(
    session: Session, settings: Settings, config: PoolConfig | None = None
) -> dict[str, dict[str, Any]]:
    """Both switches as the dashboard, `pool status` and `/health` show them: the effective
    state, where it comes from, and the last change."""
    config = config or load_pool_config(session, settings)
    changes = _last_changes(session)
    runtime_assignment = bool(config.assignment_enabled)
    assignment_off_by = (
        "environment"
        if not settings.pool_assignment
        else ("runtime" if not runtime_assignment else None)
    )
    return {
        "assignment": {
            "enabled": settings.pool_assignment and runtime_assignment,
            "environment": "on" if settings.pool_assignment else "off",
            "runtime": runtime_assignment,
            "off_by": assignment_off_by,
            "last_change": changes.get("assignment"),
        },
        "refills": {
            "enabled": bool(config.refills_enabled),
            "runtime": bool(config.refills_enabled),
            "off_by": None if config.refills_enabled else "runtime",
            "last_change": changes.get("refills"),
        },
    }


def set_switch(
    session: Session,
    settings: Settings,
    name: str,
    enabled: bool,
    *,
    actor: str,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> bool:
    """Switch `name` ("assignment" or "refills") on or off at runtime and record a `switch`
    event; commit. Returns whether anything changed (switching to the current state records
    nothing)."""
    if name not in SWITCH_SETTINGS:
        raise ValueError(f"unknown switch {name!r}; switches are {', '.join(SWITCH_SETTINGS)}")
    key = SWITCH_SETTINGS[name]
    previous = bool(getattr(load_pool_config(session, settings), key))
    if previous == enabled:
        session.rollback()
        return False
    set_pool_setting(session, key, int(enabled), updated_by=actor_id)
    session.add(
        PoolEvent(
            kind="switch",
            user_id=actor_id,
            detail={
                "switch": name,
                "enabled": enabled,
                "previous": previous,
                "actor": actor,
                "actor_id": str(actor_id) if actor_id else None,
                "reason": (reason or "")[:500] or None,
                "environment": (
                    ("on" if settings.pool_assignment else "off") if name == "assignment" else None
                ),
            },
            created_at=utcnow(),
        )
    )
    session.commit()
    log.warning(
        "pool.switch",
        extra={"switch": name, "enabled": enabled, "actor": actor, "reason": reason},
    )
    return True
