"""`pool simulate`: replay a demand pattern against a scratch database, fixed vs demand sizing.

Whether demand-aware sizing is worth switching on is a question about one's own traffic, so
the answer should come from running the real thing, not from a spreadsheet. A simulation run
builds a scratch database (a SQLite file in a temporary folder, or a new database on a
PostgreSQL server), generates the master template there and replays the same arrivals twice:
once with a fixed master target, once with the target demand sizing computes. Claims are real
(`create_campaign`: the pool claim, or the batch-seeded fallback when the pool is empty) and so
are refills (`replenish_pool` with the batch seeder); only time is virtual:

* arrivals follow a Poisson process of `rate_per_min` plus bursts of `size` claims spread
  uniformly over `over_min` minutes (seeded, so both variants see exactly the same requests);
* a claim asks for a refill, which completes `lead_time_s` later in virtual time (the queue
  wait and seeding a deployment lives through); claims while one is pending ask for nothing
  more, as with the per-pool unique refill job; a monitor pass every minute asks for a refill
  when the pool is below its target, as the scheduled monitor does;
* events and campaigns are re-stamped with the virtual time after each step, so the demand
  model reads the history it would have read in production. `replenish_pool` reads the wall
  clock, so for the demand variant the simulator computes `effective_target` at the virtual
  time and stores it as the master target just before each refill (demand sizing itself stays
  off in the scratch database): the same model, the same refill, on the virtual clock.

Reported per variant: hit rate, time-weighted average and maximum of ready campaigns, builds,
and the storage the waiting pool holds (rows and bytes per campaign as measured in the scratch
database, times the average pool size). The scratch database is dropped afterwards.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.appcontext import db_session
from portal.config import Settings
from portal.devtools.scratch import Tick, no_progress, quietly, scratch_app
from portal.extensions import db
from portal.models import Campaign, ImageBlob, PoolEvent, User
from portal.services.accounts.users import create_user
from portal.services.images.backend import get_image_store
from portal.services.infra.queue import get_redis
from portal.services.pool.config import (
    PoolConfigError,
    load_pool_config,
    set_pool_setting,
    set_pool_settings,
    validate_setting,
)
from portal.services.pool.creation import create_campaign
from portal.services.pool.demand import effective_target
from portal.services.pool.events import CLAIM_KINDS, PoolEventKind
from portal.services.pool.replenish import replenish_pool
from portal.services.template import generate_template

log = logging.getLogger("portal.simulate")

VIRTUAL_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC: runs are reproducible
MAX_ARRIVALS = 20_000
MAX_DURATION_MIN = 7 * 24 * 60


class SimulationError(ValueError):
    """A simulation option is out of range or inconsistent; the message says which."""


@dataclass(frozen=True)
class Burst:
    """`size` extra claims spread uniformly over `over_min` minutes from minute `at_min`."""

    at_min: float
    size: int
    over_min: float = 2.0

    @classmethod
    def parse(cls, raw: str) -> Burst:
        """`AT:SIZE[:OVER]` in minutes, e.g. `90:40:2` (40 claims from minute 90 to 92)."""
        parts = raw.split(":")
        if len(parts) not in (2, 3):
            raise SimulationError(f"burst {raw!r}: write AT:SIZE or AT:SIZE:OVER (minutes)")
        try:
            at, size = float(parts[0]), int(parts[1])
            over = float(parts[2]) if len(parts) == 3 else 2.0
        except ValueError:
            raise SimulationError(
                f"burst {raw!r}: AT and OVER are minutes, SIZE a whole number"
            ) from None
        if at < 0 or size < 1 or over < 0:
            raise SimulationError(f"burst {raw!r}: AT >= 0, SIZE >= 1 and OVER >= 0 are needed")
        return cls(at, size, over)


@dataclass(frozen=True)
class SimulationPlan:
    """What to replay and how to size the pool; validated on creation, before anything runs."""

    rate_per_min: float = 0.5
    bursts: tuple[Burst, ...] = ()
    duration_min: float = 360.0
    lead_time_s: float = 60.0
    fixed_target: int = 5
    demand_min: int = 2
    demand_max: int = 50
    half_life_min: int = 15
    service_level: int = 95
    monitor_every_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rate_per_min <= 600:
            raise SimulationError("--rate must be between 0 and 600 claims per minute")
        if not 1 <= self.duration_min <= MAX_DURATION_MIN:
            raise SimulationError(f"--duration must be between 1 and {MAX_DURATION_MIN} minutes")
        if not 0 < self.lead_time_s <= 3600:
            raise SimulationError("--lead-time must be more than 0 and at most 3600 seconds")
        if not 10 <= self.monitor_every_s <= 3600:
            raise SimulationError("--monitor-every must be between 10 and 3600 seconds")
        try:
            validate_setting("master_target", self.fixed_target)
            validate_setting("demand_min", self.demand_min)
            validate_setting("demand_max", self.demand_max)
            validate_setting("demand_half_life_min", self.half_life_min)
            validate_setting("demand_service_level", self.service_level)
        except PoolConfigError as exc:
            raise SimulationError(str(exc)) from None
        if self.demand_min > self.demand_max:
            raise SimulationError("--demand-min must not be larger than --demand-max")
        for burst in self.bursts:
            if burst.at_min + burst.over_min > self.duration_min:
                raise SimulationError(
                    f"the burst at minute {burst.at_min:g} (over {burst.over_min:g} min) ends "
                    f"after the simulation ({self.duration_min:g} min)"
                )
        expected = self.rate_per_min * self.duration_min + sum(b.size for b in self.bursts)
        if expected > MAX_ARRIVALS:
            raise SimulationError(
                f"about {expected:.0f} claims: more than {MAX_ARRIVALS}; shorten --duration "
                "or lower --rate"
            )
        if expected < 1:
            raise SimulationError("no claims to replay: give a --rate above 0 or a --burst")

    def arrivals(self) -> list[float]:
        """Arrival times in seconds from the start, the same for every call (seeded)."""
        rng = random.Random(self.seed)
        end = self.duration_min * 60
        times: list[float] = []
        if self.rate_per_min > 0:
            t = rng.expovariate(self.rate_per_min / 60)
            while t < end:
                times.append(t)
                t += rng.expovariate(self.rate_per_min / 60)
        for burst in self.bursts:
            start, span = burst.at_min * 60, burst.over_min * 60
            times.extend(start + rng.uniform(0, span) for _ in range(burst.size))
        return sorted(times)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bursts": [asdict(b) for b in self.bursts]}


@dataclass
class VariantResult:
    """What one sizing policy did with the arrivals."""

    policy: str
    claims: int = 0
    pool_hits: int = 0
    fallbacks: int = 0
    refills: int = 0
    campaigns_built: int = 0
    avg_pool_size: float = 0.0
    max_pool_size: int = 0
    avg_target: float = 0.0
    max_target: int = 0
    rows_per_campaign: int | None = None
    bytes_per_campaign: int | None = None
    blobs_created: int = 0
    elapsed_s: float = 0.0
    targets: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def hit_rate(self) -> float | None:
        return round(self.pool_hits / self.claims, 4) if self.claims else None

    def as_dict(self) -> dict[str, Any]:
        rows = self.rows_per_campaign
        size = self.bytes_per_campaign
        return {
            "policy": self.policy,
            "claims": self.claims,
            "pool_hits": self.pool_hits,
            "fallbacks": self.fallbacks,
            "hit_rate": self.hit_rate,
            "avg_pool_size": round(self.avg_pool_size, 3),
            "max_pool_size": self.max_pool_size,
            "avg_target": round(self.avg_target, 3),
            "max_target": self.max_target,
            "refills": self.refills,
            "campaigns_built": self.campaigns_built,
            "rows_per_campaign": rows,
            "bytes_per_campaign": size,
            "avg_pool_rows": round(self.avg_pool_size * rows) if rows else None,
            "avg_pool_bytes": round(self.avg_pool_size * size) if size else None,
            "blobs_created": self.blobs_created,
            "elapsed_s": round(self.elapsed_s, 1),
        }


def database_bytes(session: Session) -> int:
    """The size of the whole database, as the database itself counts it."""
    if session.get_bind().dialect.name == "sqlite":
        pages = session.execute(sa.text("PRAGMA page_count")).scalar_one()
        page_size = session.execute(sa.text("PRAGMA page_size")).scalar_one()
        return int(pages) * int(page_size)
    return int(session.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


class _Replay:
    """One policy over the arrivals, in one scratch database (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        redis_client: Any,
        settings: Settings,
        plan: SimulationPlan,
        policy: str,
        tick: Tick,
    ) -> None:
        self.session, self.redis, self.settings = session, redis_client, settings
        self.plan, self.policy, self.tick = plan, policy, tick
        self.result = VariantResult(policy)
        self.level = 0
        self.clock = 0.0  # seconds since VIRTUAL_START
        self.area = 0.0  # ∫ level dt
        self.target_area = 0.0
        self.target = 0
        self.pending: float | None = None

    def at(self, seconds: float) -> datetime:
        return VIRTUAL_START + timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        span = seconds - self.clock
        self.area += self.level * span
        self.target_area += self.target * span
        self.clock = seconds

    def target_now(self) -> int:
        if self.policy == "fixed":
            return self.plan.fixed_target
        config = replace(load_pool_config(self.session, self.settings), demand_sizing=1)
        target = effective_target(
            self.session, self.settings, "master", config=config, now=self.at(self.clock)
        )
        return target.value

    def set_target(self) -> None:
        self.target = self.target_now()
        self.result.max_target = max(self.result.max_target, self.target)
        if not self.result.targets or self.result.targets[-1][1] != self.target:
            self.result.targets.append((round(self.clock / 60, 2), self.target))

    def refill(self) -> None:
        """A refill job runs: build up to the target now, stamped with the virtual time."""
        self.pending = None
        self.set_target()
        set_pool_setting(self.session, "master_target", self.target)
        self.session.commit()
        report = replenish_pool(self.session, self.redis, self.settings, "master")
        if report.failed:
            raise RuntimeError(f"{report.failed} pool build(s) failed during the simulation")
        built = [uuid.UUID(i) for i in report.built]
        if built:
            stamp = self.at(self.clock)
            self.session.execute(
                sa.update(PoolEvent)
                .where(
                    PoolEvent.campaign_id.in_(built), PoolEvent.kind == PoolEventKind.REPLENISHED
                )
                .values(created_at=stamp)
            )
            self.session.execute(
                sa.update(Campaign).where(Campaign.id.in_(built)).values(pool_created_at=stamp)
            )
            self.session.commit()
        self.result.refills += 1
        self.result.campaigns_built += len(built)
        self.level += len(built)
        self.result.max_pool_size = max(self.result.max_pool_size, self.level)

    def claim(self, user_id: uuid.UUID, number: int) -> None:
        """One create request, as `POST /api/v2/campaigns` makes it, stamped virtually."""
        user = self.session.get_one(User, user_id)
        created = create_campaign(
            self.session, self.redis, self.settings, user, f"Simulated campaign {number}", None
        )
        stamp = self.at(self.clock)
        self.session.execute(
            sa.update(PoolEvent)
            .where(
                PoolEvent.campaign_id == created.campaign_id,
                PoolEvent.kind.in_(CLAIM_KINDS),
            )
            .values(created_at=stamp)
        )
        self.session.execute(
            sa.update(Campaign)
            .where(Campaign.id == created.campaign_id)
            .values(activated_at=stamp, created_at=stamp, updated_at=stamp)
        )
        self.session.commit()
        self.session.expunge_all()
        self.result.claims += 1
        if created.source == "seeded":
            self.result.fallbacks += 1
        else:
            self.result.pool_hits += 1
            self.level -= 1
        if self.pending is None:
            self.pending = self.clock + self.plan.lead_time_s

    def monitor(self) -> None:
        self.set_target()
        if self.level < self.target and self.pending is None:
            self.pending = self.clock + self.plan.lead_time_s

    def run(self, user_id: uuid.UUID) -> VariantResult:
        arrivals = self.plan.arrivals()
        end = self.plan.duration_min * 60
        self.refill()  # the pool starts full at its initial target
        next_monitor = self.plan.monitor_every_s
        index = 0
        while True:
            candidates = [end]
            if self.pending is not None:
                candidates.append(self.pending)
            if index < len(arrivals):
                candidates.append(arrivals[index])
            candidates.append(next_monitor)
            now = min(candidates)
            if now >= end:
                break
            self.advance(now)
            if self.pending is not None and now == self.pending:
                self.refill()
            elif index < len(arrivals) and now == arrivals[index]:
                index += 1
                self.claim(user_id, index)
                self.tick(self.policy)
            else:
                self.monitor()
                next_monitor += self.plan.monitor_every_s
        self.advance(end)
        self.result.avg_pool_size = self.area / end
        self.result.avg_target = self.target_area / end
        return self.result


def _replay_in_scratch(
    database_url: str,
    secret_key: str,
    plan: SimulationPlan,
    policy: str,
    tick: Tick,
) -> VariantResult:
    """Migrate a scratch database, generate the template, replay one policy on it."""
    started = time.perf_counter()
    prefix = f"campaign-pool-simulate-{policy}-"
    with scratch_app(database_url, secret_key, prefix) as scratch, quietly(scratch.app):
        app = scratch.app
        session = db_session()
        generate_template(session, get_image_store(app))
        settings = app.config["SETTINGS"]
        user_id = create_user(session, "simulated@simulation.invalid", "Sim", None).id
        defaults = load_pool_config(session, settings)
        set_pool_settings(
            session,
            settings,
            {
                "demand_sizing": 0,
                "demand_min": plan.demand_min,
                "demand_max": plan.demand_max,
                "demand_half_life_min": plan.half_life_min,
                "demand_service_level": plan.service_level,
                "max_size": max(defaults.max_size, plan.demand_max, plan.fixed_target),
            },
        )
        session.commit()
        bytes_before = database_bytes(session)
        blobs_before = session.scalar(sa.select(sa.func.count()).select_from(ImageBlob))
        replay = _Replay(session, get_redis(app), settings, plan, policy, tick)
        result = replay.run(user_id)
        created = result.campaigns_built + result.fallbacks
        if created:
            result.bytes_per_campaign = round((database_bytes(session) - bytes_before) / created)
        rows = session.scalar(
            sa.select(PoolEvent.detail).where(PoolEvent.kind == PoolEventKind.REPLENISHED).limit(1)
        )
        result.rows_per_campaign = (rows or {}).get("rows")
        blobs_after = session.scalar(sa.select(sa.func.count()).select_from(ImageBlob))
        result.blobs_created = int(blobs_after or 0) - int(blobs_before or 0)
        db.session.remove()
    result.elapsed_s = time.perf_counter() - started
    return result


def run_simulation(
    database_url: str, secret_key: str, plan: SimulationPlan, tick: Tick = no_progress
) -> dict[str, Any]:
    """Replay `plan` with a fixed target and with demand sizing; return both and the verdict.

    `database_url` only says where the scratch database goes: a PostgreSQL URL puts it on
    that server, anything else in a temporary SQLite file. Nothing is written to it."""
    arrivals = plan.arrivals()
    variants = {}
    for policy in ("fixed", "demand"):
        variants[policy] = _replay_in_scratch(database_url, secret_key, plan, policy, tick)
    fixed, demand = variants["fixed"], variants["demand"]
    backend = sa.engine.make_url(database_url).get_backend_name()
    return {
        "plan": plan.as_dict(),
        "database": "postgresql" if backend == "postgresql" else "sqlite",
        "arrivals": len(arrivals),
        "fixed": fixed.as_dict(),
        "demand": demand.as_dict(),
        "demand_targets": demand.targets,  # [minute, target] at each change
        "verdict": {
            "hit_rate_gain": round((demand.hit_rate or 0) - (fixed.hit_rate or 0), 4),
            "avg_pool_size_ratio": (
                round(demand.avg_pool_size / fixed.avg_pool_size, 3)
                if fixed.avg_pool_size
                else None
            ),
            "demand_better": (demand.hit_rate or 0) > (fixed.hit_rate or 0)
            and demand.avg_pool_size <= fixed.avg_pool_size,
        },
    }


TABLE_ROWS = (
    ("claims", "claims"),
    ("pool hits", "pool_hits"),
    ("fallbacks (seeded in the request)", "fallbacks"),
    ("hit rate", "hit_rate"),
    ("average ready campaigns", "avg_pool_size"),
    ("maximum ready campaigns", "max_pool_size"),
    ("average target", "avg_target"),
    ("refills / campaigns built", None),
    ("rows per campaign", "rows_per_campaign"),
    ("bytes per campaign", "bytes_per_campaign"),
    ("average storage held by the pool", "avg_pool_bytes"),
    ("image blobs created", "blobs_created"),
)


def format_table(figures: dict[str, Any]) -> str:
    """The two variants side by side, for a person."""
    fixed, demand = figures["fixed"], figures["demand"]

    def cell(row: dict[str, Any], key: str | None) -> str:
        if key is None:
            return f"{row['refills']} / {row['campaigns_built']}"
        value = row[key]
        if value is None:
            return "-"
        if key == "hit_rate":
            return f"{value * 100:.1f}%"
        if key == "avg_pool_bytes":
            return f"{value / 1_048_576:.2f} MiB"
        return f"{value:g}" if isinstance(value, float) else str(value)

    width = max(len(label) for label, _ in TABLE_ROWS)
    lines = [f"{'':<{width}}  {'fixed':>14}  {'demand-aware':>14}"]
    for label, key in TABLE_ROWS:
        lines.append(f"{label:<{width}}  {cell(fixed, key):>14}  {cell(demand, key):>14}")
    verdict = figures["verdict"]
    lines.append(
        f"hit rate {'+' if verdict['hit_rate_gain'] >= 0 else ''}"
        f"{verdict['hit_rate_gain'] * 100:.1f} points at {verdict['avg_pool_size_ratio']} x "
        "the average pool size"
    )
    return "\n".join(lines)
