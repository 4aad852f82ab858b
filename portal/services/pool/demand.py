"""Demand-aware sizing of the master pool: the target that covers one refill lead time.

A fixed target is either too small for a burst (the pool empties and requests fall back to
seeding) or too large for a quiet night (ready campaigns wait for days, holding rows). The pool
is a base-stock system: every claim asks for a replacement that arrives one *lead time* W later
(queue wait + seeding). The campaigns claimed but not yet replaced are, by Little's law,
L = λ·W on average, and Poisson-distributed when claims arrive independently (M/G/∞, whatever
the distribution of W). A claim finds the pool empty when S or more are outstanding, so the
smallest S with P(X <= S-1) >= service level serves that share of claims:
S = poisson_quantile(λ·W, service level) + 1, clamped to [demand_min, demand_max].

λ (claims per minute on the master pool, fallbacks included: they are demand the pool missed)
is read from `pool_events`, aggregated in SQL:
- *recent*: an exponentially weighted rate with half-life `demand_half_life_min`, an unbiased
  estimate of a steady rate that forgets a burst within a few half-lives;
- *burst*: the same with a fifth of that half-life, so a burst raises the target within
  minutes (λ = the larger of the two: up fast, down slowly);
- *profile*: the mean rate of this hour of the day over `demand_history_days`, blended half and
  half with the recent rate once a day of history exists, so the pool grows ahead of the usual
  evening rush rather than after it has emptied the pool.

W is the median time from a claim to the next master pool build becoming ready (capped, and
the median, because a claim that left the pool above its target is followed by no build at all).

Everything takes `now`, so tests and the simulator run the model on their own clock.
"""

from __future__ import annotations

import functools
import math
import operator
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from portal.config import Settings
from portal.models import PoolEvent, utcnow
from portal.services.infra.sql_time import epoch_bucket
from portal.services.pool.config import PoolConfig, load_pool_config
from portal.services.pool.events import CLAIM_KINDS, PoolEventKind

BURST_HALF_LIFE_RATIO = 5
BUCKET_S = 30
HALF_LIVES_READ = 8  # events older than this many half-lives weigh < 0.4%: not read
LEAD_TIME_SAMPLES = 50
DEFAULT_LEAD_TIME_S = 60.0  # until a claim has been followed by a build
MAX_LEAD_TIME_S = 15 * 60.0
NORMAL_APPROXIMATION_ABOVE = 500.0  # exp(-mean) underflows long before 745


def demand_events() -> sa.ColumnElement[bool]:
    """Claims the master pool served, and requests no pool could serve (fallbacks).

    Written as `kind IN (...)` first so both databases look the rows up through the
    (kind, created_at) index even before statistics exist (a fresh SQLite file has none)."""
    return sa.and_(
        PoolEvent.kind.in_(CLAIM_KINDS),
        sa.or_(PoolEvent.kind == PoolEventKind.FALLBACK, PoolEvent.pool_type == "master"),
    )


# -- the rate ------------------------------------------------------------------------------


def ewma_rates(
    session: Session, now: datetime, half_lives_min: tuple[float, ...]
) -> tuple[float, ...]:
    """Exponentially weighted claim rates (per minute), one per half-life, from one GROUP BY.

    rate = k · Σ exp(-k · age) with k = ln 2 / half-life: for claims arriving at a steady rate
    λ the sum approaches λ / k, so this estimates λ with recent claims weighing most. Events
    are summed per bucket at the bucket's mean time: 30 s, or a tenth of the shortest
    half-life when that is longer, so a day-long half-life still reads a few hundred rows."""
    since = now - timedelta(minutes=max(half_lives_min) * HALF_LIVES_READ)
    size = max(BUCKET_S, int(min(half_lives_min) * 60 / 10))
    bucket = epoch_bucket(session, PoolEvent.created_at, size).label("b")
    second = epoch_bucket(session, PoolEvent.created_at, 1)
    rows = session.execute(
        sa.select(bucket, sa.func.count(), sa.func.avg(second))
        .where(demand_events(), PoolEvent.created_at >= since, PoolEvent.created_at <= now)
        .group_by(bucket)
    ).all()
    now_s = now.timestamp()
    rates = []
    for half_life in half_lives_min:
        k = math.log(2) / half_life
        total = sum(n * math.exp(-k * max(0.0, (now_s - float(mean)) / 60)) for _, n, mean in rows)
        rates.append(k * total)
    return tuple(rates)


def profile_rate(session: Session, now: datetime, days: int) -> float | None:
    """Mean claims per minute in this UTC hour of the day on the previous `days` days; None
    with less than a day of history (no profile to speak of).

    Counted over one index range per day (the same hour on each earlier day) rather than by
    the hour of every event of the period, so it reads about 1/24 of the history."""
    if days <= 0:
        return None
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = session.scalar(
        sa.select(PoolEvent.created_at)
        .where(
            demand_events(),
            PoolEvent.created_at >= now - timedelta(days=days),
            PoolEvent.created_at < this_hour,
        )
        .order_by(PoolEvent.created_at)
        .limit(1)
    )
    if first is None or now - first < timedelta(days=1):
        return None
    hour = timedelta(hours=1)
    starts = [this_hour - timedelta(days=d) for d in range(1, days + 1)]
    starts = [start for start in starts if start + hour > first]
    if not starts:
        return None
    # One scalar subquery per day, each an index range scan, summed in one statement: an OR
    # of the ranges is planned as a scan of the whole period by SQLite without statistics.
    per_day = [
        sa.select(sa.func.count())
        .where(demand_events(), PoolEvent.created_at >= s, PoolEvent.created_at < s + hour)
        .scalar_subquery()
        for s in starts
    ]
    count = session.scalar(sa.select(functools.reduce(operator.add, per_day)))
    return (count or 0) / (60 * len(starts))


# -- the lead time -------------------------------------------------------------------------


def lead_time(session: Session, now: datetime, since: datetime) -> tuple[float, int]:
    """(seconds, samples): median time from a recent master claim to the next master build
    becoming ready, i.e. queue wait + seeding as this deployment lives them."""
    build = aliased(PoolEvent)
    next_ready = (
        sa.select(sa.func.min(build.created_at))
        .where(
            build.kind == PoolEventKind.REPLENISHED,
            build.pool_type == "master",
            build.created_at >= PoolEvent.created_at,
            build.created_at <= now,
        )
        .scalar_subquery()
    )
    # The next build may not have happened yet: MIN over no rows is NULL.
    rows: Sequence[sa.Row[datetime, datetime | None]] = session.execute(
        sa.select(PoolEvent.created_at, next_ready)
        .where(demand_events(), PoolEvent.created_at >= since, PoolEvent.created_at <= now)
        .order_by(PoolEvent.created_at.desc())
        .limit(LEAD_TIME_SAMPLES)
    ).all()
    waits = [
        min(MAX_LEAD_TIME_S, (ready - claimed).total_seconds())
        for claimed, ready in rows
        if ready is not None
    ]
    if not waits:
        return DEFAULT_LEAD_TIME_S, 0
    return float(statistics.median(waits)), len(waits)


# -- the target ----------------------------------------------------------------------------


def poisson_quantile(mean: float, probability: float) -> int:
    """The smallest k with P(X <= k) >= probability for X ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    if mean > NORMAL_APPROXIMATION_ABOVE:
        z = statistics.NormalDist().inv_cdf(probability)
        return math.ceil(mean + z * math.sqrt(mean))
    k, pmf = 0, math.exp(-mean)
    cdf = pmf
    while cdf < probability:
        k += 1
        pmf *= mean / k
        cdf += pmf
    return k


@dataclass(frozen=True)
class DemandEstimate:
    """The model's figures at one moment, and the target they lead to."""

    at: str
    rate_per_min: float
    rate_recent: float
    rate_burst: float
    rate_profile: float | None
    half_life_min: int
    lead_time_s: float
    lead_time_samples: int
    expected: float  # L = λ·W, claims outstanding during one lead time
    base: int  # ceil(L)
    margin: int
    unclamped: int  # base + margin = poisson_quantile(L) + 1
    minimum: int
    maximum: int
    service_level: int
    recommended: int  # unclamped within [minimum, maximum]

    def explain(self) -> str:
        profile = f", hour profile {self.rate_profile:.2f}" if self.rate_profile is not None else ""
        return (
            f"λ={self.rate_per_min:.2f}/min (recent {self.rate_recent:.2f} over "
            f"{self.half_life_min} min half-life, burst {self.rate_burst:.2f}{profile}), "
            f"lead time {self.lead_time_s:.0f} s → L=λW={self.expected:.2f} → {self.base} "
            f"+ margin {self.margin} = {self.unclamped} ({self.service_level}% of claims "
            f"served), clamped to [{self.minimum}, {self.maximum}] → {self.recommended}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "explanation": self.explain()}


def estimate_demand(session: Session, config: PoolConfig, now: datetime) -> DemandEstimate:
    """Run the model of the module docstring on the events up to `now`."""
    half_life = config.demand_half_life_min
    burst_half_life = max(1.0, half_life / BURST_HALF_LIFE_RATIO)
    recent, burst = ewma_rates(session, now, (float(half_life), burst_half_life))
    profile = profile_rate(session, now, config.demand_history_days)
    base_rate = recent if profile is None else (recent + profile) / 2
    rate = max(burst, base_rate)
    history = timedelta(days=max(1, config.demand_history_days))
    lead_s, samples = lead_time(session, now, now - history)
    expected = rate * lead_s / 60
    unclamped = poisson_quantile(expected, config.demand_service_level / 100) + 1
    base = math.ceil(round(expected, 9))
    low, high = config.demand_min, max(config.demand_min, config.demand_max)
    return DemandEstimate(
        at=now.isoformat(),
        rate_per_min=round(rate, 4),
        rate_recent=round(recent, 4),
        rate_burst=round(burst, 4),
        rate_profile=None if profile is None else round(profile, 4),
        half_life_min=half_life,
        lead_time_s=round(lead_s, 3),
        lead_time_samples=samples,
        expected=round(expected, 4),
        base=base,
        margin=unclamped - base,
        unclamped=unclamped,
        minimum=low,
        maximum=high,
        service_level=config.demand_service_level,
        recommended=min(high, max(low, unclamped)),
    )


@dataclass(frozen=True)
class EffectiveTarget:
    """The target a refill brings a pool to, the configured one, and why they differ."""

    pool_type: str
    value: int
    configured: int
    demand_sizing: bool
    reason: str
    estimate: DemandEstimate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool_type": self.pool_type,
            "value": self.value,
            "configured": self.configured,
            "demand_sizing": self.demand_sizing,
            "reason": self.reason,
            "estimate": self.estimate.as_dict() if self.estimate else None,
        }


def effective_target(
    session: Session,
    settings: Settings,
    pool_type: str = "master",
    *,
    config: PoolConfig | None = None,
    now: datetime | None = None,
) -> EffectiveTarget:
    """The target refills use: demand-sized for the master pool when `demand_sizing` is on,
    the configured target otherwise (and always for user pools: one gamemaster's claims are
    too few to estimate a rate from). Never above `max_size`."""
    config = config or load_pool_config(session, settings)
    configured = config.target_for(pool_type)
    if pool_type != "master":
        return EffectiveTarget(
            pool_type, configured, configured, False, "configured target (user pools)"
        )
    estimate = estimate_demand(session, config, now or utcnow())
    if not config.demand_sizing:
        reason = (
            f"demand sizing off: configured target {configured} "
            f"(demand sizing would set {estimate.recommended})"
        )
        return EffectiveTarget(pool_type, configured, configured, False, reason, estimate)
    value = min(estimate.recommended, config.max_size)
    reason = estimate.explain()
    if value < estimate.recommended:
        reason += f", capped by max_size {config.max_size}"
    return EffectiveTarget(pool_type, value, configured, True, reason, estimate)
