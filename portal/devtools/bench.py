"""`bench`: measure seeding (and pool assignment) the way docs/performance.md states its targets.

Everything runs on a scratch app (`portal.devtools.scratch`), never on the configured database:
on PostgreSQL a new database `campaign_pool_bench_<random>` on the same server (created, migrated,
dropped afterwards), on SQLite a temporary file; no Redis, ImageKit, mail or Slack, so a bench run
can neither upload files nor enqueue jobs nor alert anyone. The master template is generated
there, the database is filled with `background` batch-seeded campaigns and ANALYZEd (a
production database holds many campaigns and has statistics that say so; a database holding
only the template, or one analysed before the campaigns arrived, is planned for a world where
every row belongs to the template), then:

* batch and traditional seeding (both with shared images), N timed runs each after a warm-up,
  timed around `seed()` including its COMMIT; their medians give the ratios of docs/performance.md;
* image uploads: the store is wrapped in a counter and blobs are counted before and after, so
  "a new campaign adds zero uploads and zero blobs in share mode" is measured, not assumed; one
  traditional run in copy mode shows what sharing saves;
* the reference point: the template's schticks, weapons and their attachments written
  one INSERT statement per row, against the same rows copied set-based (the batch seeder's own
  statements for those three tables);
* pool assignment: ready pool campaigns are built, then claimed one by one (claim, rename,
  ownership, timestamp reset of every child row).

Figures are wall-clock medians and nearest-rank 95th percentiles in milliseconds.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.appcontext import db_session
from portal.devtools.scratch import Tick, no_progress, quietly, scratch_app
from portal.extensions import db
from portal.models import Campaign, ImageAttachment, ImageBlob, Schtick, User, Weapon, utcnow
from portal.models.base import table_of
from portal.services.campaigns.records import create_campaign_shell, find_master_template
from portal.services.images.backend import get_image_store
from portal.services.images.store import ImageStore
from portal.services.infra.percentiles import percentile
from portal.services.pool.claim import CampaignPoolService
from portal.services.pool.replenish import build_pool_campaign
from portal.services.seeding.batch import CampaignBatchSeeder, copy_tables
from portal.services.seeding.traditional import TraditionalSeeder
from portal.services.template import generate_template

BASELINE_TABLES = ("schticks", "weapons", "image_attachments")


@dataclass(frozen=True)
class BenchPlan:
    """How many timed runs of each measurement (warm-up runs come on top and are discarded)."""

    batch_runs: int = 10
    traditional_runs: int = 3
    baseline_runs: int = 5
    assign_runs: int = 10
    warmup: int = 1
    copy_run: bool = True
    background: int = 20
    template_path: str | None = None  # a template file to import instead of generating one
    # Seeding K campaigns in one transaction: timed runs per K (0 skips), and whether to
    # profile each phase with EXPLAIN (ANALYZE, BUFFERS) (PostgreSQL).
    batch_many_runs: int = 5
    batch_many_sizes: tuple[int, ...] = (1, 5, 20)
    profile: bool = False

    def __post_init__(self) -> None:
        require_at_least(1, self, "batch_runs", "traditional_runs", "baseline_runs")
        require_at_least(0, self, "assign_runs", "warmup", "background", "batch_many_runs")
        if any(k < 1 for k in self.batch_many_sizes):
            raise ValueError("batch sizes must be at least 1")

    @property
    def units(self) -> int:
        """Units of work the run reports through `tick` (for a progress bar)."""
        seeds = (self.batch_runs + self.warmup) + (self.traditional_runs + self.warmup)
        baseline = 2 * (self.baseline_runs + self.warmup)
        assign = 2 * (self.assign_runs + self.warmup) if self.assign_runs else 0
        blocks = 2 if self.batch_many_runs > 1 else 1  # batch_many: two rounds of blocks
        many = (self.batch_many_runs + blocks * self.warmup) * len(self.batch_many_sizes)
        many = many if self.batch_many_runs else 0
        profile = 2 if self.profile else 0
        return 1 + self.background + seeds + baseline + assign + int(self.copy_run) + many + profile


def require_at_least(minimum: int, plan: object, *names: str) -> None:
    """Refuse a plan (the seeding bench's or the HTTP bench's) whose named counts are below
    `minimum`, naming the first such field: the CLI shows it as a bad option."""
    for name in names:
        if getattr(plan, name) < minimum:
            raise ValueError(f"{name} must be at least {minimum}")


class Summary(TypedDict):
    """Timed runs summed up (ms), as the bench's JSON prints them."""

    median: float
    p95: float | None
    min: float
    max: float
    runs: int


def summarize(samples: list[float]) -> Summary:
    """Median, nearest-rank p95, min, max (ms) of some timed runs."""
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": percentile(ordered, 95, ndigits=2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
        "runs": len(ordered),
    }


class CountingStore:
    """An image store that counts what it is asked to do, then does it (uploads = put + copy)."""

    def __init__(self, inner: ImageStore) -> None:
        self.inner = inner
        self.service_name = inner.service_name
        self.calls = {"put": 0, "copy": 0, "delete": 0}

    @property
    def uploads(self) -> int:
        return self.calls["put"] + self.calls["copy"]

    def put(
        self, key: str, filename: str, content: bytes, content_type: str, *, context: Any
    ) -> dict[str, Any]:
        self.calls["put"] += 1
        return self.inner.put(key, filename, content, content_type, context=context)

    def copy(self, source_meta: dict[str, Any], key: str, *, context: Any) -> dict[str, Any]:
        self.calls["copy"] += 1
        return self.inner.copy(source_meta, key, context=context)

    def fetch(self, meta: dict[str, Any]) -> bytes:
        return self.inner.fetch(meta)

    def delete(self, meta: dict[str, Any], *, context: Any) -> None:
        self.calls["delete"] += 1
        self.inner.delete(meta, context=context)

    def url(self, meta: dict[str, Any], transformation: Any = None) -> str:
        return self.inner.url(meta, transformation)


def run_bench(
    database_url: str, secret_key: str, plan: BenchPlan, tick: Tick = no_progress
) -> dict[str, Any]:
    """Measure everything of the module docstring on a scratch database; return the figures."""
    with (
        scratch_app(database_url, secret_key, "campaign-pool-bench-") as scratch,
        quietly(scratch.app),
    ):
        store = CountingStore(get_image_store(scratch.app))
        figures = _measure(db_session(), store, plan, tick)
        db.session.remove()
    return figures


# ---------------------------------------------------------------------------- measurements


def _measure(session: Session, store: CountingStore, plan: BenchPlan, tick: Tick) -> dict[str, Any]:
    dialect = session.get_bind().dialect.name
    template_figures = _load_template(session, store, plan.template_path)
    template_uploads = store.uploads
    tick("template")
    owner_id = _user(session, "bench-owner").id
    # A production database holds many campaigns besides the template, and has statistics that
    # say so; measuring on the template alone would time plans no real database would get.
    for _ in range(plan.background):
        _seed_once(session, "batch", owner_id, store)
        tick("background")
    session.execute(sa.text("ANALYZE"))
    session.commit()

    blobs_before, uploads_before = _count(session, ImageBlob), store.uploads
    batch_ms, rows = _seed_runs(session, "batch", plan, tick, owner_id, store)
    trad_ms, _ = _seed_runs(session, "traditional", plan, tick, owner_id, store)
    share_uploads = store.uploads - uploads_before
    share_blobs = _count(session, ImageBlob) - blobs_before

    copy_figures: dict[str, Any] = {}
    if plan.copy_run:
        uploads, blobs = store.uploads, _count(session, ImageBlob)
        copy_ms, _ = _seed_once(session, "traditional", owner_id, store, "copy")
        copy_figures = {
            "copy_per_campaign": store.uploads - uploads,
            "copy_blobs_per_campaign": _count(session, ImageBlob) - blobs,
            "copy_traditional_ms": round(copy_ms, 2),
        }
        tick("copy mode")

    batch, traditional = summarize(batch_ms), summarize(trad_ms)
    result: dict[str, Any] = {
        "traditional_ms": traditional,
        "batch_ms": batch,
        "ratio": round(traditional["median"] / batch["median"], 1),
        "rows_per_campaign": rows,
        "imagekit_uploads": {
            "share": share_uploads,
            "share_blobs_created": share_blobs,
            "template_generation": template_uploads,
            **copy_figures,
        },
        "baseline": _baseline(session, plan, tick, owner_id),
        "batch_many_ms": _batch_many(session, plan, tick, owner_id),
        "assignment_ms": _assignment(session, plan, tick),
        "database": dialect,
        "template": template_figures,
        "runs": {
            "batch": plan.batch_runs,
            "traditional": plan.traditional_runs,
            "baseline": plan.baseline_runs,
            "assignment": plan.assign_runs,
            "batch_many": plan.batch_many_runs,
            "warmup": plan.warmup,
            "background_campaigns": plan.background,
        },
        "measured_at": utcnow().isoformat(timespec="seconds"),
    }
    if plan.profile:
        result["batch_profile"] = {
            str(k): profile_batch(session, owner_id, k, tick)
            for k in (1, max(plan.batch_many_sizes))
        }
    return result


def _load_template(session: Session, store: ImageStore, path: str | None) -> dict[str, Any]:
    """The master template to measure on: generated, or imported (streamed) from `path`."""
    from portal.services.template import import_template_file

    started = time.perf_counter()
    if path is None:
        generate_template(session, store)
    else:
        import_template_file(session, store, path)
    elapsed = (time.perf_counter() - started) * 1000
    images = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(ImageBlob.byte_size), 0))
    ).one()
    return {
        "source": path or "generated",
        "load_ms": round(elapsed, 1),
        "image_blobs": images[0],
        "image_bytes": int(images[1]),
    }


def _count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def _user(session: Session, label: str, *, gamemaster: bool = False) -> User:
    """A committed user, loaded again (as a request's token lookup would have it), so that a
    timed step does not include reloading the user its commit expired."""
    user = User(
        id=uuid.uuid4(),
        email=f"{label}-{uuid.uuid4().hex[:8]}@bench.invalid",
        name=label,
        gamemaster=gamemaster,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _template(session: Session) -> Campaign:
    template = find_master_template(session)
    if template is None:  # pragma: no cover - generate_template just made it
        raise RuntimeError("the scratch database has no master template")
    return template


def _seed_once(
    session: Session, method: str, owner_id: uuid.UUID, store: ImageStore, image_mode: str = "share"
) -> tuple[float, int]:
    """Seed one new campaign; return the wall time of `seed()` (ms, COMMIT included) and the
    rows it created. The shell is created (and flushed) before the clock starts."""
    template = _template(session)
    owner = session.get_one(User, owner_id)
    shell = create_campaign_shell(session, owner, f"bench {method} {uuid.uuid4().hex[:10]}")
    if method == "batch":
        seeder: Any = CampaignBatchSeeder(session)
    else:
        seeder = TraditionalSeeder(session, store, image_mode=image_mode)
    started = time.perf_counter()
    result = seeder.seed(shell, template)
    elapsed = (time.perf_counter() - started) * 1000
    session.expunge_all()  # the next run starts with an empty identity map, like a new request
    return elapsed, result.total_rows


def _seed_runs(
    session: Session,
    method: str,
    plan: BenchPlan,
    tick: Tick,
    owner_id: uuid.UUID,
    store: ImageStore,
) -> tuple[list[float], int]:
    runs = plan.batch_runs if method == "batch" else plan.traditional_runs
    samples: list[float] = []
    rows = 0
    for index in range(plan.warmup + runs):
        elapsed, rows = _seed_once(session, method, owner_id, store)
        if index >= plan.warmup:
            samples.append(elapsed)
        tick(method)
    return samples, rows


# ---------------------------------------------------------------------------- K at once


def _shells(session: Session, owner_id: uuid.UUID, count: int, label: str) -> list[Campaign]:
    """`count` committed, empty campaigns of one owner (what a pool build reserves)."""
    owner = session.get(User, owner_id)
    assert owner is not None
    shells = [
        create_campaign_shell(session, owner, f"{label} {uuid.uuid4().hex[:10]}")
        for _ in range(count)
    ]
    session.commit()
    return shells


def _batch_many(
    session: Session, plan: BenchPlan, tick: Tick, owner_id: uuid.UUID
) -> dict[str, Any] | None:
    """Seeding K campaigns in one transaction (`seed_many`), per K: the whole transaction and
    its cost per campaign, timed around `seed_many` including its COMMIT (the shells are
    committed before the clock starts).

    Each K runs in blocks, like a refill seeding K after K, so every K pays for writing out
    the pages it dirtied itself (a K = 20 transaction dirties ~20 MB, which whichever
    transaction comes next writes out if the Ks alternate). The database grows during the
    run, and a larger database seeds more slowly, so the blocks run twice, in opposite orders
    (1, 5, 20, then 20, 5, 1), each block after a warm-up seed, and the medians take both."""
    if not plan.batch_many_runs:
        return None
    sizes = list(plan.batch_many_sizes)
    samples: dict[int, list[float]] = {k: [] for k in sizes}
    first = (plan.batch_many_runs + 1) // 2
    for order, runs in ((sizes, first), (sizes[::-1], plan.batch_many_runs - first)):
        for k in order:
            for index in range(plan.warmup + runs if runs else 0):
                shells = _shells(session, owner_id, k, f"bench K={k}")
                template = _template(session)
                started = time.perf_counter()
                CampaignBatchSeeder(session).seed_many(shells, template)
                elapsed = (time.perf_counter() - started) * 1000
                session.expunge_all()
                if index >= plan.warmup:
                    samples[k].append(elapsed)
                tick(f"K={k}")
    out: dict[str, Any] = {}
    for k, timings in samples.items():
        whole = summarize(timings)
        per = summarize([ms / k for ms in timings])
        out[str(k)] = {
            "per_campaign_median": per["median"],
            "per_campaign_p95": per["p95"],
            "transaction_median": whole["median"],
            "runs": len(timings),
        }
    smallest, largest = min(samples), max(samples)
    if smallest != largest:
        out["ratio"] = {
            f"{largest}_vs_{smallest}": round(
                out[str(largest)]["per_campaign_median"]
                / out[str(smallest)]["per_campaign_median"],
                3,
            )
        }
    return out


def profile_batch(session: Session, owner_id: uuid.UUID, k: int, tick: Tick) -> dict[str, Any]:
    """Where one K-campaign seed spends its time, phase by phase, as PostgreSQL reports it:
    each phase's statement run under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` (which executes
    it, so the phases follow each other as in a real seed), then the COMMIT timed. For the copy
    statement, each table's INSERT and the foreign-key triggers it fired. None on SQLite."""
    from portal.services.seeding import batch

    if session.get_bind().dialect.name != "postgresql":
        return {"database": "sqlite", "profile": None}
    template = _template(session)
    shells = _shells(session, owner_id, k, f"profile K={k}")
    targets = [shell.id for shell in shells]
    template_id = template.id
    connection = session.connection()
    statements = batch.statements_for(batch.ALL_TABLES, True, connection.dialect)
    params = {"template_id": template_id, "owner_id": owner_id, "now": utcnow()}
    phases: dict[str, Any] = {}

    def explain(name: str, statement: Any, values: dict[str, Any]) -> Any:
        expanded = statement.compile(dialect=connection.dialect).construct_expanded_state(values)
        sql = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {expanded.statement}"
        started = time.perf_counter()
        [[plan]] = connection.exec_driver_sql(sql, expanded.parameters).all()
        wall = (time.perf_counter() - started) * 1000
        phases[name] = _plan_figures(plan[0], wall)
        return plan[0]

    started = time.perf_counter()
    # 1. the id map, made in the database: template ids x targets, a new uuid each
    connection.exec_driver_sql(statements.create_map)
    explain("map", statements.map_fill, {**params, "target_ids": targets})
    # 3. the copy: one statement of ten data-modifying CTEs
    copy_plan = explain("copy", statements.combined, params)
    phases["copy"]["tables"] = _cte_figures(copy_plan)
    # 4. mark seeded, then COMMIT
    campaigns = table_of(Campaign)
    mark = (
        sa.update(campaigns)
        .where(campaigns.c.id.in_(targets), campaigns.c.seeded_at.is_(None))
        .values(seeded_at=utcnow(), seeding_method="batch", updated_at=utcnow())
    )
    explain("mark_seeded", mark, {})
    committed = time.perf_counter()
    session.commit()
    phases["commit"] = {"wall_ms": round((time.perf_counter() - committed) * 1000, 2)}
    total = round((time.perf_counter() - started) * 1000, 2)
    tick(f"profile K={k}")
    session.expunge_all()
    return {
        "campaigns": k,
        "phases": phases,
        "wall_ms": total,
        "wall_ms_per_campaign": round(total / k, 2),
    }


def _plan_figures(plan: dict[str, Any], wall_ms: float) -> dict[str, Any]:
    top = plan["Plan"]
    triggers = plan.get("Triggers", [])
    return {
        "wall_ms": round(wall_ms, 2),
        "planning_ms": round(plan.get("Planning Time", 0.0), 2),
        "execution_ms": round(plan.get("Execution Time", 0.0), 2),
        "trigger_ms": round(sum(t.get("Time", 0.0) for t in triggers), 2),
        "trigger_calls": sum(t.get("Calls", 0) for t in triggers),
        "rows": top.get("Actual Rows"),
        "buffers": {
            key: top.get(key, 0)
            for key in (
                "Shared Hit Blocks",
                "Shared Read Blocks",
                "Shared Dirtied Blocks",
                "Shared Written Blocks",
                "Local Hit Blocks",
                "Local Dirtied Blocks",
            )
        },
    }


def _cte_figures(plan: dict[str, Any]) -> dict[str, Any]:
    """Per table of the combined copy: the time and buffers of its INSERT (its CTE node)."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        if node.get("Parent Relationship") == "InitPlan" and node.get(
            "Subplan Name", ""
        ).startswith("CTE copy_"):
            name = node["Subplan Name"].removeprefix("CTE copy_")
            out[name] = {
                "ms": round(node.get("Actual Total Time", 0.0), 2),
                "rows": node.get("Actual Rows"),
                "shared_dirtied": node.get("Shared Dirtied Blocks", 0),
                "shared_hit": node.get("Shared Hit Blocks", 0),
            }
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return out


# ----------------------------------------------------------------- the row-at-a-time baseline


def _baseline(session: Session, plan: BenchPlan, tick: Tick, owner_id: uuid.UUID) -> dict[str, Any]:
    """Schticks, weapons and their attachments: one INSERT per row vs set-based.

    Both variants write the same rows into a fresh campaign in one transaction and commit; the
    row-by-row variant reads the source rows first (not timed) so only the writes are compared."""
    template = _template(session)
    template_id = template.id
    sources = _baseline_rows(session, template_id)
    row_count = sum(len(rows) for _, rows in sources)
    row_ms: list[float] = []
    set_ms: list[float] = []
    for index in range(plan.warmup + plan.baseline_runs):
        user = session.get_one(User, owner_id)
        shell = create_campaign_shell(session, user, f"baseline rows {uuid.uuid4().hex[:10]}")
        session.commit()
        target_id = shell.id
        started = time.perf_counter()
        _insert_row_by_row(session, sources, target_id)
        session.commit()
        elapsed = (time.perf_counter() - started) * 1000
        if index >= plan.warmup:
            row_ms.append(elapsed)
        tick("baseline rows")

        user = session.get_one(User, owner_id)
        shell = create_campaign_shell(session, user, f"baseline set {uuid.uuid4().hex[:10]}")
        session.commit()
        target_id = shell.id
        started = time.perf_counter()
        copied = copy_tables(
            session,
            template_id=template_id,
            target_ids=[target_id],
            owner_id=owner_id,
            now=utcnow(),
            tables=BASELINE_TABLES,
            with_campaign=False,
        )
        session.commit()
        elapsed = (time.perf_counter() - started) * 1000
        if index >= plan.warmup:
            set_ms.append(elapsed)
        if sum(copied.values()) != row_count:
            raise RuntimeError(f"baseline: set-based copied {copied}, expected {row_count} rows")
        tick("baseline set")
        session.expunge_all()
    rows_stats, set_stats = summarize(row_ms), summarize(set_ms)
    return {
        "tables": list(BASELINE_TABLES),
        "rows": row_count,
        "row_by_row_ms": rows_stats,
        "set_based_ms": set_stats,
        "ratio": round(rows_stats["median"] / set_stats["median"], 1),
    }


def _baseline_rows(
    session: Session, template_id: uuid.UUID
) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
    """The template's schticks, weapons and their attachments, as plain column dicts."""
    out: list[tuple[sa.Table, list[dict[str, Any]]]] = []
    for model in (Schtick, Weapon):
        table = table_of(model)
        rows = session.execute(sa.select(table).where(table.c.campaign_id == template_id))
        out.append((table, [dict(row._mapping) for row in rows]))
    attachments = table_of(ImageAttachment)
    owned = sa.or_(
        *(
            sa.and_(
                attachments.c.record_type == model.__name__,
                attachments.c.record_id.in_(
                    sa.select(table_of(model).c.id).where(
                        table_of(model).c.campaign_id == template_id
                    )
                ),
            )
            for model in (Schtick, Weapon)
        )
    )
    rows = session.execute(sa.select(attachments).where(owned))
    out.append((attachments, [dict(row._mapping) for row in rows]))
    session.commit()
    return out


def _insert_row_by_row(
    session: Session, sources: list[tuple[sa.Table, list[dict[str, Any]]]], target_id: uuid.UUID
) -> None:
    """The pre-batch way: one INSERT statement (one round trip) per row, ids remapped in Python."""
    now = utcnow()
    new_ids: dict[uuid.UUID, uuid.UUID] = {}
    for _table, rows in sources:
        for row in rows:
            new_ids[row["id"]] = uuid.uuid4()
    for table, rows in sources:
        insert = table.insert()
        for row in rows:
            values = dict(row, id=new_ids[row["id"]])
            if "campaign_id" in values:
                values["campaign_id"] = target_id
            if "updated_at" in values:
                values["updated_at"] = now
            values["created_at"] = now
            if values.get("prerequisite_id") is not None:
                values["prerequisite_id"] = new_ids[values["prerequisite_id"]]
            if "record_id" in values:
                values["record_id"] = new_ids[values["record_id"]]
            session.execute(insert, values)


# ---------------------------------------------------------------------------- pool assignment


def _assignment(session: Session, plan: BenchPlan, tick: Tick) -> Summary | None:
    """Claim + rename + ownership + timestamp reset, per claim (None without a pool service)."""
    if not plan.assign_runs:
        return None
    template = _template(session)
    total = plan.warmup + plan.assign_runs
    for _ in range(total):
        build_pool_campaign(session, _template(session), "master", template.user_id)
        tick("pool build")
    samples: list[float] = []
    service = CampaignPoolService(session)
    for index in range(total):
        # A gamemaster, as the API requires: the claim also looks in their (empty) own pool.
        user = _user(session, f"bench-gm-{index}", gamemaster=True)
        started = time.perf_counter()
        assignment = service.assign_pool_campaign(user, f"Bench campaign {index}")
        elapsed = (time.perf_counter() - started) * 1000
        if assignment is None:
            raise RuntimeError("bench: the pool ran dry before every claim was made")
        if index >= plan.warmup:
            samples.append(elapsed)
        session.expunge_all()
        tick("assign")
    return summarize(samples)
