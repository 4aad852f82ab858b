"""The portal's quick actions: replenish now, clean up, resize a pool, retire stale campaigns,
the demand sizing and refill capacity settings, and the pool switches (the kill switch).

Each action is a plain function (session and values in, an `ActionResult` out) so the portal,
the CLI or a test can run it, and each one is recorded in `pool_events` as kind "action" with
`{admin, admin_id, action, ok, result}`: when the pool misbehaves, the first question is who
touched it last and what came of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, PoolSetting, User
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import enqueue_replenish
from portal.services.pool.config import PoolConfigError, set_pool_setting, set_pool_settings
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.rollout import retire_old_versions
from portal.services.pool.switches import set_switch, switch_states

ACTIONS = (
    "replenish",
    "cleanup",
    "resize",
    "retire_stale",
    "demand_sizing",
    "switches",
    "refill_capacity",
)
REPLENISH_SCOPES = ("master", "all")


@dataclass
class ActionResult:
    """What an action did, in words for the admin and in figures for the record."""

    action: str
    ok: bool
    message: str
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "message": self.message, **self.result}


def record_action(session: Session, admin: User, outcome: ActionResult) -> PoolEvent:
    """Record the `action` pool event for `outcome` and commit it."""
    event = record_pool_event(
        session,
        PoolEventKind.ACTION,
        user_id=admin.id,
        pool_type=outcome.result.get("pool_type"),
        detail={
            "admin": admin.email,
            "admin_id": str(admin.id),
            "action": outcome.action,
            "ok": outcome.ok,
            "message": outcome.message,
            "result": outcome.result,
        },
    )
    session.commit()
    return event


def replenish_now(redis_client: redis.Redis, scope: str = "master") -> ActionResult:
    """Queue a refill of the master pool (or of every pool) for a worker.

    Queued, not run here: a refill builds campaigns for seconds and must not hold a web
    thread; the dashboard shows the new campaigns as the worker reports them."""
    if scope not in REPLENISH_SCOPES:
        raise ValueError(f"unknown replenish scope {scope!r}")
    job_id = enqueue_replenish(redis_client, scope)
    if job_id is None:
        return ActionResult(
            "replenish",
            True,
            "A refill is already queued (or the queue is unreachable); nothing new was queued.",
            {"scope": scope, "job_id": None, "pool_type": "master" if scope == "master" else None},
        )
    what = "the master pool" if scope == "master" else "every pool"
    return ActionResult(
        "replenish",
        True,
        f"Refill of {what} queued (job {job_id}).",
        {"scope": scope, "job_id": job_id, "pool_type": "master" if scope == "master" else None},
    )


def resize_pool(
    session: Session,
    redis_client: redis.Redis | None,
    admin: User,
    pool_type: str,
    target: object,
) -> ActionResult:
    """Set the target size of a pool (validated by the pool configuration) and, when it grew,
    queue a refill so the new size is reached without waiting for the schedule."""
    if pool_type not in ("master", "user"):
        return ActionResult("resize", False, f"Unknown pool {pool_type!r}.", {})
    key = f"{pool_type}_target"
    try:
        value = set_pool_setting(session, key, target, updated_by=admin.id)
    except PoolConfigError as exc:
        session.rollback()
        return ActionResult("resize", False, str(exc), {"pool_type": pool_type})
    session.commit()
    job_id = None
    if redis_client is not None and value > 0:
        job_id = enqueue_replenish(redis_client, "master" if pool_type == "master" else "all")
    message = f"Target of the {pool_type} pool set to {value}."
    sizing = session.get(PoolSetting, "demand_sizing")  # off unless stored (no env default)
    if pool_type == "master" and sizing is not None and sizing.value:
        message += " Demand sizing is on: refills follow the demand target until it is off."
    return ActionResult(
        "resize",
        True,
        message,
        {"pool_type": pool_type, "target": value, "job_id": job_id},
    )


def configure_demand_sizing(
    session: Session,
    settings: Settings,
    redis_client: redis.Redis | None,
    admin: User,
    values: dict[str, object],
) -> ActionResult:
    """Store the demand sizing settings together (all or nothing) and, when sizing is on,
    queue a refill so a larger effective target is reached without waiting for the schedule."""
    try:
        stored = set_pool_settings(session, settings, values, updated_by=admin.id)
    except PoolConfigError as exc:
        session.rollback()
        return ActionResult("demand_sizing", False, str(exc), {"pool_type": "master"})
    session.commit()
    job_id = None
    if redis_client is not None and stored.get("demand_sizing"):
        job_id = enqueue_replenish(redis_client, "master")
    state = "on" if stored.get("demand_sizing") else "off"
    return ActionResult(
        "demand_sizing",
        True,
        f"Demand sizing {state} (target between {stored.get('demand_min')} and "
        f"{stored.get('demand_max')}).",
        {"pool_type": "master", **stored, "job_id": job_id},
    )


def set_pool_switches(
    session: Session,
    settings: Settings,
    redis_client: redis.Redis | None,
    admin: User,
    *,
    assignment: bool,
    refills: bool,
    reason: str | None = None,
) -> ActionResult:
    """Switch pool assignment (the kill switch) and refills on or off; each change is a
    `switch` event. Resuming refills queues one, so the pool is topped up at once."""
    changed = {}
    for name, enabled in (("assignment", assignment), ("refills", refills)):
        if set_switch(
            session, settings, name, enabled, actor=admin.email, actor_id=admin.id, reason=reason
        ):
            changed[name] = enabled
    states = switch_states(session, settings)
    job_id = None
    if changed.get("refills") and redis_client is not None:
        job_id = enqueue_replenish(redis_client, "all")
    words = {
        "assignment": ("Pool assignment on: creates claim from the pools again.",
                       "Pool assignment OFF: every create is seeded, nothing is claimed."),
        "refills": ("Refills resumed.", "Refills paused: no pool campaign is built."),
    }  # fmt: skip
    parts = [words[name][0 if enabled else 1] for name, enabled in changed.items()]
    if not parts:
        parts = ["Nothing changed."]
    if not states["assignment"]["enabled"] and states["assignment"]["off_by"] == "environment":
        parts.append("POOL_ASSIGNMENT=off in the environment keeps assignment off.")
    return ActionResult(
        "switches",
        True,
        " ".join(parts),
        {
            "assignment": states["assignment"]["enabled"],
            "refills": states["refills"]["enabled"],
            "changed": sorted(changed),
            "job_id": job_id,
        },
    )


def set_refill_capacity(
    session: Session,
    settings: Settings,
    redis_client: redis.Redis | None,
    admin: User,
    values: dict[str, object],
) -> ActionResult:
    """Store `max_parallel_builds` and `build_batch_size` together (all or nothing) and queue a
    refill, which starts as many builds as the new cap allows."""
    try:
        stored = set_pool_settings(session, settings, values, updated_by=admin.id)
    except PoolConfigError as exc:
        session.rollback()
        return ActionResult("refill_capacity", False, str(exc), {"pool_type": "master"})
    session.commit()
    job_id = enqueue_replenish(redis_client, "all") if redis_client is not None else None
    return ActionResult(
        "refill_capacity",
        True,
        f"Refills: up to {stored.get('max_parallel_builds')} builds of a pool at once, "
        f"up to {stored.get('build_batch_size')} campaigns per build.",
        {"pool_type": "master", **stored, "job_id": job_id},
    )


def retire_stale(session: Session) -> ActionResult:
    """Retire pool campaigns (ready or building) built from an older template version.

    A version change retires them by itself (portal.services.pool.rollout); this is for the ones
    it could not see, e.g. campaigns stamped before an upgrade. A stale campaign is never
    handed out, but it takes space and hides how full the pool really is. Retiring marks it
    `retired` (clean-up deletes retired campaigns later) and records one `retired` event per
    campaign, so the pool level chart accounts for it."""
    template = find_master_template(session)
    if template is None or template.template_version is None:
        return ActionResult("retire_stale", False, "There is no master template yet.", {})
    version = template.template_version
    rows = retire_old_versions(session, version, reason="stale_template")
    session.commit()
    versions = sorted({row.template_version for row in rows if row.template_version is not None})
    if not rows:
        message = f"No stale campaigns: every ready campaign is at template version {version}."
    else:
        message = f"Retired {len(rows)} campaign(s) built from an older template version."
    return ActionResult(
        "retire_stale",
        True,
        message,
        {"retired": len(rows), "versions": versions, "current_version": version},
    )


def cleanup_now(
    session: Session, settings: Settings, redis_client: redis.Redis | None
) -> ActionResult:
    """Run the pool clean-up (failed builds, retired campaigns, builds stuck past their
    timeout) now rather than at its next scheduled run."""
    from portal.services.pool.cleanup import cleanup_pool

    report = cleanup_pool(session, settings, redis_client)
    session.commit()
    figures = report.as_dict()
    summary = {
        k: v for k, v in figures.items() if isinstance(v, str | int | float | bool) or v is None
    }
    message = (
        f"Clean-up done: {summary.get('campaigns_deleted', 0)} campaign(s) deleted, "
        f"{summary.get('reaped', 0)} stuck build(s) reaped, "
        f"{summary.get('blobs_deleted', 0)} unused image(s) purged."
    )
    return ActionResult("cleanup", True, message, summary)


def admin_of(session: Session, user_id: uuid.UUID) -> User:
    """The acting admin, re-read in this session."""
    user = session.get(User, user_id)
    if user is None or not user.admin:
        raise PermissionError("only admins may run portal actions")
    return user
