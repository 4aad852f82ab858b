"""Prometheus metrics: what `GET /metrics` exposes and where each figure comes from.

A deployment runs several web instances and RQ workers on any number of hosts, so every figure
is taken where it is true for the whole deployment (docs/operations.md, "Metrics"):

1. **Read at scrape time** from the database and Redis (`ScrapeCollector`, gauges): pool levels,
   targets, rollout progress, open alerts, RQ queue depth and live workers. Every web instance
   answers the same values, whichever of them Prometheus asks.
2. **Totals of `pool_events` rows** (`EventTotals`, counters and histograms): what workers do
   (builds and their seeding durations, failed builds, clean-ups, retirements, alerts and their
   notifications). Workers record these rows anyway, on whatever host they run; reading them
   at scrape time brings them to every instance, with the same values on each and across
   restarts (no counter resets), and needs nothing new on the workers' side.
3. **In this process's memory** (prometheus_client `Counter`/`Histogram`): what a web process
   sees while it serves a create: creates by source, fallbacks, create and claim latency, time
   in pool before hand-out. Its threads share them; gunicorn runs one process per instance
   (gunicorn.conf.py), so the client's multiprocess mode is not needed, and Prometheus sums
   the instances.

Labels have bounded values only (pool type, source, method, queue, reason ...), never a user
or campaign id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, utcnow
from portal.services.infra.queue import QUEUE_NAMES
from portal.services.monitoring.alerts import open_incidents
from portal.services.pool.creation import CreatedCampaign
from portal.services.pool.demand import effective_target
from portal.services.pool.events import PoolEventKind
from portal.services.pool.rollout_status import rollout_status
from portal.services.pool.status import pool_status

log = logging.getLogger("portal.metrics")

PREFIX = "campaign_pool"
POOL_TYPES = ("master", "user")
SOURCES = ("user_pool", "master_pool", "seeded")
FALLBACK_MODES = ("sync", "async")
# The monitor's incidents (portal.services.monitoring.monitor) by the part of their key before
# ":", and the severities they open with: `campaign_pool_alerts_open` has a series for each.
ALERT_NAMES = ("pool_low", "refill_failing", "workers_missing")
ALERT_SEVERITIES = ("warning", "critical")
CLEANUP_REASONS = ("failed", "retired", "abandoned", "building")
ALERT_CHANNELS = ("email", "slack")
SEEDING_METHODS = ("batch", "traditional")

# Bucket bounds in seconds. Claims take milliseconds (docs/performance.md: a median of about
# 5 ms), a create served by the pool ~10 ms and one seeded in the request tens to hundreds; a
# pool build's seeding ~35 ms on a quiet database and seconds on a busy one; a campaign waits
# minutes to days.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CREATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SEEDING_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TIME_IN_POOL_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)

# -- 3. per process ------------------------------------------------------------------------

# `_created` series double every counter and histogram for a timestamp nobody charts.
disable_created_metrics()

PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=PROCESS_REGISTRY)
PlatformCollector(registry=PROCESS_REGISTRY)
GCCollector(registry=PROCESS_REGISTRY)

CREATES = Counter(
    f"{PREFIX}_creates",
    "Campaigns created through the API, by where they came from (this process).",
    ["source"],
    registry=PROCESS_REGISTRY,
)
FALLBACKS = Counter(
    f"{PREFIX}_fallbacks",
    "Creates no pool could serve, seeded in the request (sync) or by a job (async) (this process).",
    ["mode"],
    registry=PROCESS_REGISTRY,
)
CREATE_SECONDS = Histogram(
    f"{PREFIX}_create_duration_seconds",
    "Time to create a campaign (claim or seeding, and the commit), by source (this process).",
    ["source"],
    buckets=CREATE_BUCKETS,
    registry=PROCESS_REGISTRY,
)
CLAIM_SECONDS = Histogram(
    f"{PREFIX}_claim_duration_seconds",
    "Time to claim a ready campaign and hand it over in the database, by pool (this process).",
    ["pool"],
    buckets=CLAIM_BUCKETS,
    registry=PROCESS_REGISTRY,
)
TIME_IN_POOL_SECONDS = Histogram(
    f"{PREFIX}_time_in_pool_seconds",
    "How long a campaign waited in its pool before it was handed out, by pool (this process).",
    ["pool"],
    buckets=TIME_IN_POOL_BUCKETS,
    registry=PROCESS_REGISTRY,
)
SIGN_IN_THROTTLED = Counter(
    f"{PREFIX}_sign_in_throttled",
    "Sign-in attempts refused with 429 by the sign-in limits, by limit (this process).",
    ["limit"],
    registry=PROCESS_REGISTRY,
)
SIGN_IN_LIMITS = ("account", "address")
# Every series exists from the start at 0, so rates and the dashboards need no `or vector(0)`.
for _limit in SIGN_IN_LIMITS:
    SIGN_IN_THROTTLED.labels(_limit)
for _source in SOURCES:
    CREATES.labels(_source)
    CREATE_SECONDS.labels(_source)
for _mode in FALLBACK_MODES:
    FALLBACKS.labels(_mode)
for _pool in POOL_TYPES:
    CLAIM_SECONDS.labels(_pool)
    TIME_IN_POOL_SECONDS.labels(_pool)


def observe_create(created: CreatedCampaign, seconds: float) -> None:
    """Count one create that succeeded and record its timings (called by the API)."""
    source = created.source if created.source in SOURCES else "seeded"
    CREATES.labels(source).inc()
    CREATE_SECONDS.labels(source).observe(seconds)
    if source == "seeded":
        FALLBACKS.labels(created.fallback_mode or "sync").inc()
        return
    pool = "user" if source == "user_pool" else "master"
    if created.claim_ms is not None:
        CLAIM_SECONDS.labels(pool).observe(created.claim_ms / 1000)
    if created.pool_age_s is not None:
        TIME_IN_POOL_SECONDS.labels(pool).observe(max(0.0, created.pool_age_s))


def observe_sign_in_throttled(limit: str) -> None:
    """Count one sign-in attempt refused by the `limit` ("account" or "address") limit."""
    SIGN_IN_THROTTLED.labels(limit if limit in SIGN_IN_LIMITS else "address").inc()


# -- 2. totals of pool_events --------------------------------------------------------------

# A row counts once it is older than SETTLE: every writer of pool_events commits well within
# it (the longest, a clean-up job, is stopped after 30 minutes), so the rows before the
# horizon no longer change and their totals are kept; each scrape reads only the newer rows.
SETTLE = timedelta(hours=1)
SETTLE_STEP = timedelta(minutes=10)
COUNTED_KINDS = (
    PoolEventKind.REPLENISHED,
    PoolEventKind.REPLENISH_FAILED,
    PoolEventKind.CLEANED,
    PoolEventKind.RETIRED,
    PoolEventKind.ALERT,
    PoolEventKind.THROTTLED,
)


@dataclass
class HistogramTotal:
    """Cumulative bucket counts (one per bound, `le` semantics), count and sum in seconds."""

    buckets: list[int]
    count: int = 0
    total: float = 0.0

    def __add__(self, other: HistogramTotal) -> HistogramTotal:
        return HistogramTotal(
            [a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
            self.count + other.count,
            self.total + other.total,
        )


@dataclass
class Totals:
    """Counter values and histograms keyed by (metric name, label values)."""

    counters: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)
    histograms: dict[tuple[str, tuple[str, ...]], HistogramTotal] = field(default_factory=dict)

    def count(self, name: str, labels: tuple[str, ...], n: int) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0) + n

    def __add__(self, other: Totals) -> Totals:
        out = Totals(dict(self.counters), dict(self.histograms))
        for key, n in other.counters.items():
            out.counters[key] = out.counters.get(key, 0) + n
        for key, hist in other.histograms.items():
            out.histograms[key] = out.histograms[key] + hist if key in out.histograms else hist
        return out


def _flag(value: Any) -> bool:
    """A JSON boolean as either database returns it through `as_string()`."""
    return str(value).lower() in ("true", "1")


def _bounded(value: Any, allowed: Iterable[str]) -> str:
    return str(value) if value in allowed else "other"


def _alert_name(incident: Any) -> str:
    return _bounded(str(incident or "").split(":", 1)[0], ALERT_NAMES)


def _window(since: datetime | None, before: datetime | None) -> list[Any]:
    clauses: list[Any] = []
    if since is not None:
        clauses.append(PoolEvent.created_at >= since)
    if before is not None:
        clauses.append(PoolEvent.created_at < before)
    return clauses


def aggregate_events(
    session: Session, since: datetime | None = None, before: datetime | None = None
) -> Totals:
    """The totals of the pool_events rows created in [since, before): two GROUP BYs on the
    (kind, created_at) index, whatever the number of rows."""
    totals = Totals()
    detail = PoolEvent.detail
    columns = (
        PoolEvent.kind,
        PoolEvent.pool_type,
        detail["reason"].as_string().label("reason"),
        detail["reaped"].as_string().label("reaped"),
        detail["incident"].as_string().label("incident"),
        detail["state"].as_string().label("state"),
        detail[("delivery", "email")].as_string().label("email"),
        detail[("delivery", "slack")].as_string().label("slack"),
    )
    rows = session.execute(
        sa.select(*columns, sa.func.count())
        .where(PoolEvent.kind.in_(COUNTED_KINDS), *_window(since, before))
        .group_by(*columns)
    )
    for kind, pool_type, reason, reaped, incident, state, email, slack, n in rows:
        pool = _bounded(pool_type, POOL_TYPES)
        if kind == PoolEventKind.REPLENISHED:
            totals.count(f"{PREFIX}_refills_built", (pool,), n)
        elif kind == PoolEventKind.REPLENISH_FAILED:
            why = "reaped" if _flag(reaped) else "error"
            totals.count(f"{PREFIX}_refills_failed", (pool, why), n)
        elif kind == PoolEventKind.CLEANED:
            totals.count(f"{PREFIX}_cleanups", (pool, _bounded(reason, CLEANUP_REASONS)), n)
        elif kind == PoolEventKind.RETIRED:
            totals.count(f"{PREFIX}_retirements", (pool,), n)
        elif kind == PoolEventKind.THROTTLED:
            totals.count(f"{PREFIX}_throttled", (), n)
        elif kind == PoolEventKind.ALERT:
            name = _alert_name(incident)
            totals.count(f"{PREFIX}_alerts", (name, _bounded(state, ("open", "resolved"))), n)
            for channel, outcome in zip(ALERT_CHANNELS, (email, slack), strict=True):
                if outcome in ("sent", "failed"):
                    totals.count(f"{PREFIX}_alert_notifications", (channel, outcome), n)

    ms = PoolEvent.duration_ms
    method = detail["method"].as_string().label("method")
    bucket_sums = [
        sa.func.sum(sa.case((ms <= bound * 1000, 1), else_=0)) for bound in SEEDING_BUCKETS
    ]
    rows = session.execute(
        sa.select(PoolEvent.pool_type, method, sa.func.count(), sa.func.sum(ms), *bucket_sums)
        .where(
            PoolEvent.kind == PoolEventKind.REPLENISHED, ms.is_not(None), *_window(since, before)
        )
        .group_by(PoolEvent.pool_type, method)
    )
    for pool_type, method_name, n, sum_ms, *buckets in rows:
        key = (
            f"{PREFIX}_seeding_duration_seconds",
            (_bounded(pool_type, POOL_TYPES), _bounded(method_name or "batch", SEEDING_METHODS)),
        )
        hist = HistogramTotal([int(b or 0) for b in buckets], int(n), float(sum_ms or 0) / 1000)
        totals.histograms[key] = totals.histograms[key] + hist if key in totals.histograms else hist
    return totals


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    epoch = int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()) // seconds * seconds
    return datetime.fromtimestamp(epoch, UTC)


class EventTotals:
    """Totals of pool_events for one database, kept by a process between scrapes.

    The rows before a horizon (SETTLE ago, in steps of SETTLE_STEP) are summed once and kept;
    each read adds the rows after it. The result is the same as summing every row each time,
    so every web instance, and the same instance after a restart, reports the same totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._horizon: datetime | None = None
        self._settled = Totals()

    def read(self, session: Session, now: datetime | None = None) -> Totals:
        horizon = _floor((now or utcnow()) - SETTLE, SETTLE_STEP)
        with self._lock:
            if self._horizon is None or horizon > self._horizon:
                settled = self._settled + aggregate_events(session, self._horizon, horizon)
                self._settled, self._horizon = settled, horizon
            settled, start = self._settled, self._horizon
        return settled + aggregate_events(session, start)


# What each total is, for the families built from `Totals`: name -> (help, label names).
COUNTER_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    f"{PREFIX}_refills_built": ("Pool campaigns built (ready), by pool.", ("pool",)),
    f"{PREFIX}_refills_failed": (
        "Pool builds that failed (error) or were reaped after their worker died, by pool.",
        ("pool", "reason"),
    ),
    f"{PREFIX}_cleanups": (
        "Pool campaigns deleted by the clean-up, by pool and why.",
        ("pool", "reason"),
    ),
    f"{PREFIX}_retirements": (
        "Pool campaigns retired by a template version change, by pool.",
        ("pool",),
    ),
    f"{PREFIX}_alerts": (
        "Alert incidents opened (or escalated) and resolved by the monitor, by alert.",
        ("alert", "state"),
    ),
    f"{PREFIX}_alert_notifications": (
        "Alert messages sent or failed to send, by channel.",
        ("channel", "outcome"),
    ),
    f"{PREFIX}_throttled": (
        "Campaign creates refused by the per-user creation limit (429).",
        (),
    ),
}
HISTOGRAM_FAMILIES: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    f"{PREFIX}_seeding_duration_seconds": (
        "Seeding time of pool builds (the batch seed of one campaign), by pool and method.",
        ("pool", "method"),
        SEEDING_BUCKETS,
    ),
}
# Series present at 0 before the first event, so rates and alert rules see them.
BASELINE: dict[str, list[tuple[str, ...]]] = {
    f"{PREFIX}_refills_built": [(p,) for p in POOL_TYPES],
    f"{PREFIX}_refills_failed": [(p, r) for p in POOL_TYPES for r in ("error", "reaped")],
    f"{PREFIX}_cleanups": [(p, r) for p in POOL_TYPES for r in CLEANUP_REASONS],
    f"{PREFIX}_retirements": [(p,) for p in POOL_TYPES],
    f"{PREFIX}_alerts": [(a, s) for a in ALERT_NAMES for s in ("open", "resolved")],
    f"{PREFIX}_alert_notifications": [(c, o) for c in ALERT_CHANNELS for o in ("sent", "failed")],
    f"{PREFIX}_throttled": [()],
    f"{PREFIX}_seeding_duration_seconds": [(p, "batch") for p in POOL_TYPES],
}


def total_families(totals: Totals) -> list[Metric]:
    families: list[Metric] = []
    for name, (doc, labels) in COUNTER_FAMILIES.items():
        family = CounterMetricFamily(name, doc, labels=list(labels))
        values = {labels_: 0 for labels_ in BASELINE[name]}
        for (key, label_values), n in totals.counters.items():
            if key == name:
                values[label_values] = values.get(label_values, 0) + n
        for label_values, n in sorted(values.items()):
            family.add_metric(list(label_values), n)
        families.append(family)
    for name, (doc, labels, bounds) in HISTOGRAM_FAMILIES.items():
        histograms = HistogramMetricFamily(name, doc, labels=list(labels))
        empty = HistogramTotal([0] * len(bounds))
        hists = dict.fromkeys(BASELINE[name], empty)
        for (key, label_values), hist in totals.histograms.items():
            if key == name:
                hists[label_values] = hists.get(label_values, empty) + hist
        for label_values in sorted(hists):
            hist = hists[label_values]
            buckets = [(_le(b), float(n)) for b, n in zip(bounds, hist.buckets, strict=True)]
            buckets.append(("+Inf", float(hist.count)))
            histograms.add_metric(list(label_values), buckets, hist.total)
        families.append(histograms)
    return families


def _le(bound: float) -> str:
    return repr(float(bound))


# -- 1. read at scrape time ----------------------------------------------------------------


# Gauges without labels that `database_families` reads: name (after the prefix) -> help.
SINGLE_GAUGES = {
    "low_watermark": "Master pool level below which the pool counts as low.",
    "gamemasters": "Active gamemasters (each has a user pool of the user target).",
    "build_failures_consecutive": "Failed master pool builds since the last good one.",
    "halted": "1 while the master pool rests after its failure budget of failed builds.",
    "demand_sizing": "1 when the master target is sized from demand.",
    "template_version": "Version of the master template (0: none yet).",
    "rollout_in_progress": "1 while old-version pool campaigns remain after a version change.",
    "rollout_progress": "Share of all pool targets ready at the current template version (0-1).",
    "rollout_stale_remaining": "Old-version pool campaigns left to retire or delete.",
}


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def database_families(
    session: Session, settings: Settings, totals: EventTotals | None = None
) -> list[Metric]:
    """Gauges of the pool as the database has it now, and the pool_events totals."""
    status = pool_status(session, settings, with_assignments=False)
    pools = status["pools"]
    master, user = pools["master"], pools["user"]
    effective = effective_target(session, settings, "master")
    rollout = rollout_status(session, status)
    incidents = open_incidents(session)
    families: list[Metric] = []

    levels = {
        "ready": "Ready campaigns of the current template version: what a claim can hand out.",
        "building": "Pool campaigns being built.",
        "failed": "Pool campaigns whose build failed, awaiting the clean-up.",
        "stale": "Ready campaigns of an old template version (never handed out; retired next).",
        "retired": "Pool campaigns retired after a template version change, awaiting clean-up.",
    }
    for status_name, doc in levels.items():
        family = _gauge(status_name, doc + " By pool.", ["pool"])
        for pool in POOL_TYPES:
            family.add_metric([pool], pools[pool][status_name])
        families.append(family)

    user_total = user["target"] * user["gamemasters"]
    target = _gauge(
        "target",
        "Ready campaigns refills aim for: the master pool's effective target (demand-sized "
        "when demand sizing is on), every gamemaster's pool together for the user pool.",
        ["pool"],
    )
    target.add_metric(["master"], effective.value)
    target.add_metric(["user"], user_total)
    configured = _gauge(
        "configured_target",
        "Configured target (pool settings or POOL_*_TARGET), before demand sizing.",
        ["pool"],
    )
    configured.add_metric(["master"], effective.configured)
    configured.add_metric(["user"], user_total)
    families += [target, configured]
    values = {
        "low_watermark": master["low_watermark"],
        "gamemasters": user["gamemasters"],
        "build_failures_consecutive": master["consecutive_failures"],
        "halted": int(master["halted"]),
        "demand_sizing": int(effective.demand_sizing),
        "template_version": status["template_version"] or 0,
        "rollout_in_progress": int(rollout["in_progress"]),
        "rollout_progress": rollout["progress"],
        "rollout_stale_remaining": rollout["stale_remaining"],
    }
    for name, doc in SINGLE_GAUGES.items():
        family = _gauge(name, doc)
        family.add_metric([], values[name])
        families.append(family)

    alerts = _gauge(
        "alerts_open",
        "1 for each open alert incident of the monitor, by alert and severity.",
        ["alert", "severity"],
    )
    open_now = {(_alert_name(i.get("incident")), str(i.get("severity"))) for i in incidents}
    series = {(a, s) for a in ALERT_NAMES for s in ALERT_SEVERITIES}
    for alert, severity in sorted(series | open_now):
        alerts.add_metric([alert, severity], 1 if (alert, severity) in open_now else 0)
    families.append(alerts)
    if totals is not None:
        families += total_families(totals.read(session))
    return families


def redis_families(redis_client: redis.Redis, workers_visible: bool) -> list[Metric]:
    """RQ queue depth and live workers, from Redis now."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from portal.services.monitoring.monitor import workers_seen

    jobs = _gauge("queue_jobs", "RQ jobs waiting (queued) or running (started), by queue.",
                  ["queue", "state"])  # fmt: skip
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis_client)
        jobs.add_metric([name, "queued"], queue.count)
        jobs.add_metric([name, "started"], StartedJobRegistry(queue=queue).count)
    families: list[Metric] = [jobs]
    if workers_visible:
        seen = workers_seen(redis_client)
        alive = _gauge("workers_alive", "RQ workers with a recent heartbeat.")
        alive.add_metric([], seen["count"])
        per_queue = _gauge("queue_workers", "Live RQ workers listening on each queue.", ["queue"])
        for name, count in seen["queues"].items():
            per_queue.add_metric([name], count)
        families += [alive, per_queue]
    return families


def _up(name: str, doc: str, ok: bool) -> GaugeMetricFamily:
    family = _gauge(name, doc)
    family.add_metric([], 1 if ok else 0)
    return family


@dataclass
class ScrapeCollector:
    """One scrape's figures: the gauges and totals read now, then this process's metrics.

    A database or Redis that cannot be read does not fail the scrape: its families are left
    out and `campaign_pool_database_up` / `campaign_pool_redis_up` say 0, so that an alert can
    tell "the pool is empty" from "nobody could look"."""

    session: Session
    settings: Settings
    redis_client: redis.Redis | None
    totals: EventTotals | None = None
    workers_visible: bool = True

    def collect(self) -> Iterator[Metric]:
        try:
            families = database_families(self.session, self.settings, self.totals)
            database_ok = True
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unreadable", extra={"error": str(exc)[:200]})
            families, database_ok = [], False
        finally:
            self.session.rollback()  # a read: end the transaction, keep nothing
        yield _up("database_up", "1 when this scrape could read the database.", database_ok)
        yield from families
        redis_ok = False
        families = []
        if self.redis_client is not None:
            try:
                families = redis_families(self.redis_client, self.workers_visible)
                redis_ok = True
            except (RedisError, OSError) as exc:
                log.warning("metrics.redis_unreadable", extra={"error": str(exc)[:200]})
        yield _up("redis_up", "1 when this scrape could read Redis.", redis_ok)
        yield from families
        yield from PROCESS_REGISTRY.collect()


def app_collector(app: Flask, session: Session) -> ScrapeCollector:
    """The collector of one scrape of `app`: its database session, its Redis (through the
    health checks' client, whose short timeouts keep a dead Redis from stalling the scrape),
    and the pool_events totals this process keeps for the app's database."""
    from portal.services.monitoring.health import health_redis, workers_required

    totals = app.extensions.setdefault("metrics_event_totals", EventTotals())
    return ScrapeCollector(
        session=session,
        settings=app.config["SETTINGS"],
        redis_client=health_redis(app),
        totals=totals,
        workers_visible=workers_required(app),
    )


def render_metrics(collector: ScrapeCollector) -> bytes:
    """The Prometheus text exposition of one scrape."""
    return generate_latest(collector)


def scrape_authorized(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization: Bearer <token>` header carries `token` (constant time: the
    digests are compared, so neither the length nor a prefix leaks)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    expected = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), expected)
