"""Pool configuration: runtime overrides in `pool_settings`, defaulting to the environment.

Admins resize pools from the portal without a deploy, so the effective configuration is read
from the database on each use (one small indexed read) and falls back to the environment
variables (docs/configuration.md) for anything not overridden.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolSetting, utcnow

# key -> (lowest allowed, highest allowed, description)
SETTING_BOUNDS: dict[str, tuple[int, int, str]] = {
    "master_target": (0, 500, "ready campaigns kept in the master pool"),
    "user_target": (0, 5, "ready campaigns kept in each gamemaster's own pool"),
    "low_watermark": (0, 500, "master pool level below which an alert fires"),
    "max_size": (1, 1000, "hard cap on pool campaigns (ready + building) of one pool"),
    "failure_budget": (1, 100, "consecutive failed builds after which a pool stops refilling"),
    # Demand-aware sizing of the master pool (portal.services.pool.demand); off by default, so a
    # deployment sees what it would do (dashboard, analytics) before letting it size the pool.
    "demand_sizing": (0, 1, "1: size the master pool from observed demand; 0: use master_target"),
    "demand_min": (0, 500, "smallest master target demand sizing may set"),
    "demand_max": (1, 1000, "largest master target demand sizing may set"),
    "demand_half_life_min": (1, 1440, "half-life (minutes) of the recent assignment rate"),
    "demand_service_level": (50, 99, "percent of claims the pool should serve within a lead time"),
    "demand_history_days": (0, 90, "days of history for the hour-of-day profile (0: none)"),
}
# Template versions (docs/pool.md, "Template versions and rolling rebuilds").
SETTING_BOUNDS |= {
    "rollout_max_building": (1, 50, "pool builds in flight at once while a rollout rebuilds"),
}
# Parallel refills and K-campaign builds (docs/pool.md, "Refills").
SETTING_BOUNDS |= {
    "max_parallel_builds": (1, 50, "builds of one pool in flight at once (any workers, any hosts)"),
    "build_batch_size": (1, 50, "most campaigns one build seeds in one transaction (K)"),
}
# The kill switch (docs/operations.md, "Rollback: switch the pool off").
SETTING_BOUNDS |= {
    "assignment_enabled": (0, 1, "0: every create is seeded, nothing is claimed from a pool"),
    "refills_enabled": (0, 1, "0: refills are paused, no pool campaign is built"),
}
# Settings that are switches, not sizes: changed by the switch action, recorded as their own
# pool events (kind `switch`), never by the resize or settings forms.
SWITCHES = ("assignment_enabled", "refills_enabled")


# K: the most campaigns one refill build seeds in one transaction (docs/performance.md,
# "Seeding K campaigns at once", for what it saves).
DEFAULT_BATCH_SIZE = 10


class PoolConfigError(ValueError):
    """A pool setting is unknown or out of range; the message says which and why."""


@dataclass(frozen=True)
class PoolConfig:
    master_target: int
    user_target: int
    low_watermark: int
    max_size: int
    failure_budget: int
    demand_sizing: int
    demand_min: int
    demand_max: int
    demand_half_life_min: int
    demand_service_level: int
    demand_history_days: int
    # template versions
    rollout_max_building: int = 2
    # parallel refills
    max_parallel_builds: int = 10
    build_batch_size: int = 10
    # the kill switch (runtime part; POOL_ASSIGNMENT=off overrides `assignment_enabled`)
    assignment_enabled: int = 1
    refills_enabled: int = 1

    def target_for(self, pool_type: str) -> int:
        target = self.master_target if pool_type == "master" else self.user_target
        return min(target, self.max_size)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def env_defaults(settings: Settings) -> dict[str, int]:
    return {
        "master_target": settings.pool_master_target,
        "user_target": settings.pool_user_target,
        "low_watermark": settings.pool_low_watermark,
        "max_size": max(50, settings.pool_master_target * 4),
        "failure_budget": 5,
        "demand_sizing": 0,
        # The low watermark is where alerts start: a demand-sized pool should not sit below it
        # in quiet hours and page someone for doing its job.
        "demand_min": settings.pool_low_watermark,
        "demand_max": max(50, settings.pool_master_target * 4),
        "demand_half_life_min": 15,
        "demand_service_level": 95,
        "demand_history_days": 28,
        # template versions
        "rollout_max_building": 2,
        # parallel refills
        "max_parallel_builds": settings.pool_max_parallel_builds,
        "build_batch_size": DEFAULT_BATCH_SIZE,
        # the kill switch
        "assignment_enabled": 1,
        "refills_enabled": 1,
    }


def load_pool_config(session: Session, settings: Settings) -> PoolConfig:
    """The effective configuration: database overrides over environment defaults."""
    values = env_defaults(settings)
    for key, value in session.execute(sa.select(PoolSetting.key, PoolSetting.value)):
        if key in values:
            values[key] = value
    return PoolConfig(**values)


def validate_setting(key: str, raw: object) -> int:
    if key not in SETTING_BOUNDS:
        known = ", ".join(sorted(SETTING_BOUNDS))
        raise PoolConfigError(f"unknown pool setting {key!r}; known settings: {known}")
    low, high, _ = SETTING_BOUNDS[key]
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise PoolConfigError(f"{key} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise PoolConfigError(f"{key} must be between {low} and {high}, got {value}")
    return value


def set_pool_settings(
    session: Session,
    settings: Settings,
    raw: dict[str, object],
    *,
    updated_by: uuid.UUID | None = None,
) -> dict[str, int]:
    """Validate several overrides together and store them only if all are valid (flush; the
    caller commits), so a form with one bad field changes nothing. Also checks that
    demand_min <= demand_max once the new values are applied to the effective ones."""
    values = {key: validate_setting(key, value) for key, value in raw.items()}
    current = load_pool_config(session, settings)
    low = values.get("demand_min", current.demand_min)
    high = values.get("demand_max", current.demand_max)
    if low > high:
        raise PoolConfigError(f"demand_min ({low}) must not be larger than demand_max ({high})")
    for key, value in values.items():
        set_pool_setting(session, key, value, updated_by=updated_by)
    return values


def set_pool_setting(
    session: Session, key: str, raw: object, *, updated_by: uuid.UUID | None = None
) -> int:
    """Validate and store one override (flush; the caller commits)."""
    value = validate_setting(key, raw)
    row = session.get(PoolSetting, key)
    if row is None:
        session.add(PoolSetting(key=key, value=value, updated_by_id=updated_by))
    else:
        row.value = value
        row.updated_by_id = updated_by
        row.updated_at = utcnow()
    session.flush()
    return value
