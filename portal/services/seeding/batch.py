"""The batch seeder: clone the template inside the database with set-based SQL.

The traditional seeder copies ~2,500 rows one ORM record at a time; this one sends a handful of
statements whatever the size of the template:

1. one SELECT fetches the ids of every template row to copy (ids only, all tables at once);
2. every source row gets a new `uuid4` per target campaign in a temporary id-map table: on
   PostgreSQL in the same statement that selects the ids (`gen_random_uuid()`), on SQLite drawn
   in Python and written with an executemany;
3. one `INSERT ... SELECT` per table (`insert().from_select`) copies the rows, joining the map for
   the row's own id and for every foreign key: prerequisites (resolved in the same statement:
   both databases check immediate foreign keys at the end of the statement), junctures' and
   characters' factions and junctures, the character-schtick and carry links, and the polymorphic
   owners of image positions and attachments (`kind` in the map is the model class name, so a
   position is remapped only to a record of the type it names). On PostgreSQL the ten INSERTs
   travel as one statement (each is a data-modifying CTE whose RETURNING rows are counted): the
   statements never read each other's output, only the template and the map, and every foreign
   key is checked at the end of the statement, so this is the same SQL minus nine round trips;
4. one guarded UPDATE marks the campaign seeded (`seeded_at IS NULL`, so a campaign is never
   seeded twice), and everything commits together.

Nothing is matched by name (schtick names repeat across categories). Every column of a table is
copied except identity, campaign, owner and timestamps, so a column added later is copied without
anyone remembering to add it here. Images are shared: new attachments point at the template's
blobs, so seeding never talks to the image store and never creates a blob.

Why a TEMPORARY id-map table (and not a shared helper table keyed by a seeding run id): a temp
table is private to its connection, so concurrent seeders (other workers, other web processes,
the same template) can neither see nor collide with each other's maps; it needs no migration;
its writes skip the WAL and touch no shared index pages; and it cannot outlive the work. It is
created once per connection (`IF NOT EXISTS`, ~0.2 ms, instead of a create/drop cycle of ~1.5 ms
and catalog churn per seed). On PostgreSQL it is `ON COMMIT DELETE ROWS` (PostgreSQL only
truncates it at the commit of a transaction that used it, other transactions on the pooled
connection pay nothing); SQLite has no ON COMMIT clause, so its rows are deleted before the
commit. A rollback discards the rows on both, and a CREATE that is rolled back is simply redone
by the next seed.

Atomicity: all of it is one transaction. Any failure (a database error, a template that
references rows outside itself, a progress callback that raises) rolls the session back, which
removes the copied content and, when the target shell was created in the same transaction, the
shell too.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.schema import CreateTable

from portal.models import (
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    Faction,
    ImageAttachment,
    ImagePosition,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.models.base import Base, UTCDateTime, table_of
from portal.services.infra.database import rowcount
from portal.services.seeding.base import SeedingError, SeedResult

log = logging.getLogger("portal.seeding")

Progress = Callable[[str, int, int], None]
"""`progress(step, done, total)`, called after each step: ("id_map", 1, 12), ("factions", 2, 12),
... ("campaign", 12, 12). On PostgreSQL the table steps complete together (one statement)."""

METHOD = "batch"

# One row per (template row, target campaign): seeding K campaigns at once is the same
# statements with K map rows per template row, each naming the campaign its copy goes to.
ID_MAP = sa.Table(
    "seed_id_map",
    sa.MetaData(),
    sa.Column("old_id", sa.Uuid(), primary_key=True),
    sa.Column("target_id", sa.Uuid(), primary_key=True),
    sa.Column("new_id", sa.Uuid(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)

# Bound per run; the statements themselves are built once per process and cached.
_TEMPLATE = sa.bindparam("template_id", type_=sa.Uuid())
_OWNER = sa.bindparam("owner_id", type_=sa.Uuid())
_NOW = sa.bindparam("now", type_=UTCDateTime())


@dataclass(frozen=True)
class TableCopy:
    """How one table is copied.

    `kind`: the record type its rows have in the id map (None for link tables, which have no id).
    `remap`: foreign-key column -> kind of the record it points at. For link tables the first
    entry is the owning end: it selects the template's links (inner join on the map).
    `poly`: (id column, type column) of a polymorphic owner (image positions, attachments).
    `owned`: rows belong to a user, who becomes the target campaign's owner.
    """

    table_name: str
    model: type[Base]
    kind: str | None
    remap: dict[str, str] = field(default_factory=dict)
    poly: tuple[str, str] | None = None
    owned: bool = False

    @property
    def table(self) -> sa.Table:
        return table_of(self.model)

    @property
    def has_campaign(self) -> bool:
        return "campaign_id" in self.table.c


# Dependency order: whatever a row points at is copied before it (SQLite runs them in turn).
PLAN: tuple[TableCopy, ...] = (
    TableCopy("factions", Faction, "Faction"),
    TableCopy("junctures", Juncture, "Juncture", {"faction_id": "Faction"}),
    TableCopy("schticks", Schtick, "Schtick", {"prerequisite_id": "Schtick"}),
    TableCopy("weapons", Weapon, "Weapon"),
    TableCopy(
        "characters",
        Character,
        "Character",
        {"faction_id": "Faction", "juncture_id": "Juncture"},
        owned=True,
    ),
    TableCopy(
        "vehicles",
        Vehicle,
        "Vehicle",
        {"faction_id": "Faction", "juncture_id": "Juncture"},
        owned=True,
    ),
    TableCopy(
        "character_schticks",
        CharacterSchtick,
        None,
        {"character_id": "Character", "schtick_id": "Schtick"},
    ),
    TableCopy("carries", Carry, None, {"character_id": "Character", "weapon_id": "Weapon"}),
    TableCopy(
        "image_positions",
        ImagePosition,
        "ImagePosition",
        poly=("positionable_id", "positionable_type"),
    ),
    TableCopy(
        "image_attachments", ImageAttachment, "ImageAttachment", poly=("record_id", "record_type")
    ),
)
PLAN_BY_NAME = {step.table_name: step for step in PLAN}
ALL_TABLES: tuple[str, ...] = tuple(step.table_name for step in PLAN)


# ---------------------------------------------------------------------------- statements


def _kind_literal(kind: str) -> sa.ColumnElement[str]:
    """A kind as an inline SQL constant (our own class names, never user input)."""
    return sa.literal_column(f"'{kind}'", sa.String())


def _owned_by(
    id_column: sa.ColumnElement[Any], owner_ids: sa.Select[Any], dialect: str
) -> sa.ColumnElement[bool]:
    """`id_column` is one of the ids `owner_ids` selects.

    On PostgreSQL as `= ANY(ARRAY(subquery))`: the subquery runs once and the (type, id) index
    is probed for each template record, whatever the size of the table. A plain IN (subquery)
    is planned as a join, and PostgreSQL then prefers scanning every attachment of that type in
    the database (~20 ms with 200 campaigns, growing with each campaign)."""
    if dialect == "postgresql":
        return id_column == sa.any_(sa.func.array(owner_ids.scalar_subquery()))
    return id_column.in_(owner_ids)


def build_id_query(
    tables: Sequence[str], with_campaign: bool, dialect: str
) -> sa.CompoundSelect[Any]:
    """One SELECT of (kind, id) for every template row that `tables` copy.

    Positions and attachments have no campaign column: they belong to the template when their
    polymorphic owner is a template record of a copied kind (or the template campaign itself).
    One branch per owner type keeps each branch on the (type, id) index."""
    branches: list[sa.Select[Any]] = []
    owners = [
        (PLAN_BY_NAME[name].kind, PLAN_BY_NAME[name].table)
        for name in tables
        if PLAN_BY_NAME[name].kind and PLAN_BY_NAME[name].has_campaign
    ]
    for name in tables:
        step = PLAN_BY_NAME[name]
        if step.kind is None:
            continue
        table, kind = step.table, _kind_literal(step.kind).label("kind")
        if step.has_campaign:
            branches.append(sa.select(kind, table.c.id).where(table.c.campaign_id == _TEMPLATE))
            continue
        assert step.poly is not None
        id_column, type_column = (table.c[c] for c in step.poly)
        for owner_kind, owner in owners:
            owner_ids = sa.select(owner.c.id).where(owner.c.campaign_id == _TEMPLATE)
            branches.append(
                sa.select(kind, table.c.id).where(
                    type_column == owner_kind, _owned_by(id_column, owner_ids, dialect)
                )
            )
        if with_campaign:
            branches.append(
                sa.select(kind, table.c.id).where(type_column == "Campaign", id_column == _TEMPLATE)
            )
    return sa.union_all(*branches)


def build_insert(step: TableCopy) -> sa.Insert:
    """`INSERT INTO t (...) SELECT ... FROM t JOIN seed_id_map ...` for one table.

    The map holds one row per (template row, target campaign), so the join on the row's own id
    (or, for link tables, on the owning end) yields one copy per target, and every other map
    join is on the same target: the copies of one campaign only ever point at each other.

    Content tables: every column comes from the source row except the ones replaced here; a
    nullable foreign key that is set must find its target in the map, otherwise the row is left
    out and the row count check fails the seed (a template pointing outside itself is refused,
    not silently unlinked). Link tables: the owning end selects the template's links; the other
    end is a LEFT JOIN, so a link to a record outside the template produces a NULL key and the
    database refuses it (NOT NULL)."""
    table = step.table
    src = table.alias("src")
    joined: sa.FromClause = src
    values: dict[str, sa.ColumnElement[Any]] = {}
    guards: list[sa.ColumnElement[bool]] = []
    target: sa.ColumnElement[Any] | None = None
    if step.kind is not None:
        me = ID_MAP.alias("me")
        joined = joined.join(me, sa.and_(me.c.old_id == src.c.id, me.c.kind == step.kind))
        values["id"] = me.c.new_id
        target = me.c.target_id
    for column, kind in step.remap.items():
        ref = ID_MAP.alias(f"map_{column}")
        on = sa.and_(ref.c.old_id == src.c[column], ref.c.kind == kind)
        if target is None:  # a link table's owning end: it decides the target
            joined = joined.join(ref, on)
            target = ref.c.target_id
        else:
            joined = joined.outerjoin(ref, sa.and_(on, ref.c.target_id == target))
            if step.kind is not None:
                guards.append(sa.or_(src.c[column].is_(None), ref.c.new_id.is_not(None)))
        values[column] = ref.c.new_id
    assert target is not None, f"{step.table_name}: no id and no owning end to copy by"
    if step.poly is not None:
        id_column, type_column = step.poly
        owner = ID_MAP.alias("owner")
        joined = joined.join(
            owner,
            sa.and_(
                owner.c.old_id == src.c[id_column],
                owner.c.kind == src.c[type_column],
                owner.c.target_id == target,
            ),
        )
        values[id_column] = owner.c.new_id
    if step.has_campaign:
        values["campaign_id"] = target
        guards.append(src.c.campaign_id == _TEMPLATE)
    if step.owned:
        values["user_id"] = _OWNER
    for stamp in ("created_at", "updated_at"):
        if stamp in table.c:
            values[stamp] = _NOW
    names = [column.name for column in table.c]
    select = sa.select(*(values.get(name, src.c[name]) for name in names)).select_from(joined)
    if guards:
        select = select.where(*guards)
    # The row count of an INSERT ... SELECT is only kept when asked for (SQLAlchemy 2.x).
    return table.insert().from_select(names, select).execution_options(preserve_rowcount=True)


def build_combined_insert(steps: Sequence[TableCopy]) -> sa.Select[Any]:
    """All the INSERTs as data-modifying CTEs of one statement (PostgreSQL), selecting the number
    of rows each one wrote."""
    counts = []
    for step in steps:
        cte = (
            build_insert(step)
            .returning(sa.literal_column("1").label("one"))
            .cte(f"copy_{step.table_name}")
        )
        counts.append(
            sa.select(sa.func.count()).select_from(cte).scalar_subquery().label(step.table_name)
        )
    return sa.select(*counts)


def build_aggregated_id_query(ids: sa.CompoundSelect[Any]) -> sa.Select[Any]:
    """The ids of `build_id_query`, one row per kind with the ids as one comma-separated text.

    Ten short rows instead of ~1,600 UUID objects to build in Python and to send back: on
    PostgreSQL this halves the cost of building the map (measured: ~20 ms -> ~10 ms)."""
    rows = ids.subquery("template_rows")
    return sa.select(
        rows.c.kind, sa.func.aggregate_strings(sa.cast(rows.c.id, sa.Text()), ",")
    ).group_by(rows.c.kind)


_TARGETS = sa.bindparam("target_ids", type_=postgresql.ARRAY(sa.Uuid()))


def build_server_map_fill(ids: sa.CompoundSelect[Any], with_campaign: bool) -> sa.Select[Any]:
    """PostgreSQL: fill the id map in the database, in one statement, and count it by kind.

    Every template row of `build_id_query` crossed with every target gets a new id from
    `gen_random_uuid()` (version 4, like Python's), and with `with_campaign` the template
    campaign maps to each target itself. Nothing travels but the target ids: at K campaigns
    the map holds K x ~1,840 rows, and fetching the template ids, drawing K x 1,840 uuids in
    Python and sending them back as text cost about as much as the copy of a campaign's
    smallest tables (docs/performance.md, "Seeding K campaigns at once")."""
    rows = ids.subquery("template_rows")
    targets = sa.func.unnest(_TARGETS).table_valued("target_id").render_derived()
    fresh = sa.select(
        rows.c.id, targets.c.target_id, sa.func.gen_random_uuid(), rows.c.kind
    ).select_from(rows.join(targets, sa.true()))
    sources: list[sa.Select[Any]] = [fresh]
    if with_campaign:
        itself = sa.func.unnest(_TARGETS).table_valued("target_id").render_derived()
        sources.append(
            sa.select(_TEMPLATE, itself.c.target_id, itself.c.target_id, _kind_literal("Campaign"))
        )
    mapped = (
        ID_MAP.insert()
        .from_select(["old_id", "target_id", "new_id", "kind"], sa.union_all(*sources))
        .returning(ID_MAP.c.kind)
        .cte("mapped")
    )
    return sa.select(mapped.c.kind, sa.func.count()).group_by(mapped.c.kind)


@dataclass(frozen=True)
class _Statements:
    steps: tuple[TableCopy, ...]
    ids: sa.Select[Any]
    map_fill: sa.Select[Any] | None  # the map filled in the database (PostgreSQL)
    inserts: tuple[sa.Insert, ...]  # one per step, run in turn (SQLite)
    combined: sa.Select[Any] | None  # all steps in one statement (PostgreSQL)
    create_map: str


_STATEMENTS: dict[tuple[tuple[str, ...], bool, str], _Statements] = {}


def statements_for(tables: Sequence[str], with_campaign: bool, dialect: sa.Dialect) -> _Statements:
    """The statements copying `tables`: built once per process (and dialect), after which
    SQLAlchemy's statement cache also skips compiling them."""
    key = (tuple(tables), with_campaign, dialect.name)
    if key not in _STATEMENTS:
        steps = tuple(PLAN_BY_NAME[name] for name in tables)
        postgres = dialect.name == "postgresql"
        _STATEMENTS[key] = _Statements(
            steps=steps,
            ids=build_aggregated_id_query(build_id_query(tables, with_campaign, dialect.name)),
            map_fill=(
                build_server_map_fill(
                    build_id_query(tables, with_campaign, dialect.name), with_campaign
                )
                if postgres
                else None
            ),
            inserts=() if postgres else tuple(build_insert(step) for step in steps),
            combined=build_combined_insert(steps) if postgres else None,
            create_map=str(CreateTable(ID_MAP, if_not_exists=True).compile(dialect=dialect)),
        )
    return _STATEMENTS[key]


def forget_prebuilt_statements() -> None:
    """Drop the prebuilt copy statements: the next seed builds them again. For a process that
    starts over with other tables or models (the tests give every application a fresh start)."""
    _STATEMENTS.clear()


def new_uuid4_hex(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as 32-digit hex: what `uuid.uuid4().hex` returns, drawn
    from one `os.urandom` call instead of one per id (~1 ms instead of ~3 ms for the template)."""
    raw = os.urandom(16 * count).hex()
    out = []
    for start in range(0, 32 * count, 32):
        digits = raw[start : start + 32]
        variant = "89ab"[int(digits[16], 16) & 3]
        out.append(f"{digits[:12]}4{digits[13:16]}{variant}{digits[17:]}")
    return out


# ---------------------------------------------------------------------------- the copy


def copy_tables(
    session: Session,
    *,
    template_id: uuid.UUID,
    target_ids: Sequence[uuid.UUID],
    owner_id: uuid.UUID,
    now: datetime,
    tables: Sequence[str] = ALL_TABLES,
    with_campaign: bool = True,
    progress: Progress | None = None,
    total_steps: int | None = None,
) -> dict[str, int]:
    """Copy the template's rows of `tables` into each of the target campaigns; no commit.

    The same statements serve one target or K: the id map holds a row per (template row,
    target), so each INSERT ... SELECT writes K copies at once. Returns rows created per table
    (all targets together). The seeder copies every table; `bench` also times a subset
    (schticks, weapons, attachments) against the row-at-a-time baseline of docs/performance.md.
    `with_campaign` maps the template campaign itself to each target, so the campaign's own
    image and positions are copied too. Raises SeedingError when the template references rows
    outside itself (the caller rolls back)."""
    unknown = [name for name in tables if name not in PLAN_BY_NAME]
    if unknown:
        raise ValueError(f"unknown tables {unknown}; tables are {', '.join(ALL_TABLES)}")
    targets = list(dict.fromkeys(target_ids))
    if not targets or len(targets) != len(target_ids):
        raise ValueError("copy_tables needs one or more distinct target campaigns")
    if template_id in targets:
        raise SeedingError("a campaign cannot be seeded from itself")
    connection = session.connection()
    ordered = [name for name in ALL_TABLES if name in tables]
    statements = statements_for(ordered, with_campaign, connection.dialect)
    total = total_steps or len(ordered) + 1
    done = 0

    def step_done(step: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(step, done, total)

    params = {"template_id": template_id, "owner_id": owner_id, "now": now}
    expected: Counter[str] = Counter()
    if statements.map_fill is not None:  # PostgreSQL: the map is made in the database
        connection.exec_driver_sql(statements.create_map)
        for kind, count in session.execute(statements.map_fill, {**params, "target_ids": targets}):
            expected[kind] = count
    else:
        kinds: list[str] = []
        olds: list[str] = []
        for kind, joined in session.execute(statements.ids, params):
            ids = joined.split(",")
            expected[kind] = len(ids) * len(targets)
            kinds.extend([kind] * len(ids))
            olds.extend(ids)
        _fill_id_map(
            session, statements.create_map, template_id, olds, kinds, targets, with_campaign
        )
    step_done("id_map")

    if statements.combined is not None:
        counts = session.execute(statements.combined, params).one()._asdict()
    else:
        counts = {}
        for step, insert in zip(statements.steps, statements.inserts, strict=True):
            counts[step.table_name] = _run_insert(session, step, insert, params)
            _check_count(step, counts[step.table_name], expected)
            step_done(step.table_name)
        session.execute(ID_MAP.delete())  # SQLite: no ON COMMIT DELETE ROWS
    rows: dict[str, int] = {}
    for step in statements.steps:
        rows[step.table_name] = int(counts[step.table_name])
        if statements.combined is not None:
            _check_count(step, rows[step.table_name], expected)
            step_done(step.table_name)
    return rows


def _fill_id_map(
    session: Session,
    create_map: str,
    template_id: uuid.UUID,
    olds: list[str],
    kinds: list[str],
    targets: list[uuid.UUID],
    with_campaign: bool,
) -> None:
    """SQLite: make sure this connection has its map table, then write every (old, target) ->
    new row at once: a fresh uuid4 per template row and target, and, `with_campaign`, the
    template campaign itself mapped to each target. (PostgreSQL fills its map in the database:
    `build_server_map_fill`.)"""
    connection = session.connection()
    connection.exec_driver_sql(create_map)
    if with_campaign:
        olds = [*olds, str(template_id)]
        kinds = [*kinds, "Campaign"]
    if not olds:
        return
    news: list[str] = []
    for target in targets:
        news += new_uuid4_hex(len(olds) - int(with_campaign))
        if with_campaign:
            news.append(target.hex)
    rows = []
    for j, target in enumerate(targets):
        offset = j * len(olds)
        rows += [
            {"old_id": uuid.UUID(o), "target_id": target, "new_id": uuid.UUID(news[offset + i]),
             "kind": k}
            for i, (o, k) in enumerate(zip(olds, kinds, strict=True))
        ]  # fmt: skip
    session.execute(ID_MAP.insert(), rows)


def _run_insert(
    session: Session, step: TableCopy, insert: sa.Insert, params: dict[str, Any]
) -> int:
    try:
        return rowcount(session.execute(insert, params))
    except Exception as exc:
        exc.add_note(f"batch seeding failed while copying {step.table_name}")
        raise


def _check_count(step: TableCopy, count: int, expected: Counter[str]) -> None:
    if step.kind is not None and count != expected[step.kind]:
        raise SeedingError(
            f"copied {count} of the template's {expected[step.kind]} {step.table_name}: some "
            "reference a record outside the template (prerequisite, faction or juncture), or "
            "the template changed while it was being copied"
        )


# ---------------------------------------------------------------------------- the seeder


class CampaignBatchSeeder:
    """Fill empty campaigns with a set-based copy of a template; one transaction.

    `CampaignBatchSeeder(session).seed(target, template, progress=...)` where `target` is an
    empty shell (`create_campaign_shell`, flushed in this transaction or committed earlier);
    `seed_many(targets, template)` fills K shells of one owner with the same statements in one
    transaction (pool refills with a large deficit, docs/pool.md).
    """

    method = METHOD

    def __init__(self, session: Session) -> None:
        self.session = session

    def seed(
        self, target: Campaign, template: Campaign, progress: Progress | None = None
    ) -> SeedResult:
        """Copy `template` into `target`, mark it seeded and commit both together.

        On any failure the transaction is rolled back (nothing of the copy remains; a shell
        created in the same transaction goes too) and the error is re-raised. A campaign that is
        already seeded is refused with SeedingError, also when another seeder got there first."""
        return self.seed_many([target], template, progress)[0]

    def seed_many(
        self, targets: Sequence[Campaign], template: Campaign, progress: Progress | None = None
    ) -> list[SeedResult]:
        """Copy `template` into every campaign of `targets` (one owner), mark them all seeded
        and commit together: all of them or none. Each result carries the whole transaction's
        duration and its own campaign's rows."""
        session = self.session
        started = time.perf_counter()
        context: dict[str, Any] = {"method": METHOD}
        total_steps = len(ALL_TABLES) + 2
        try:
            session.flush()  # pending changes to the shells (e.g. a pool status) go with the copy
            target_ids = [target.id for target in targets]
            owners = {target.user_id for target in targets}
            template_id = template.id
            template_version = template.template_version
            context.update(
                campaign_id=str(target_ids[0]) if target_ids else None,
                campaigns=len(target_ids),
                template_id=str(template_id),
            )
            log.info("seeding.started", extra=context)
            if len(owners) != 1:
                raise SeedingError("campaigns seeded together must have one owner")
            already = [target.id for target in targets if target.seeded_at is not None]
            if already:
                raise SeedingError(f"campaign {already[0]} is already seeded")
            now = utcnow()
            rows = copy_tables(
                session,
                template_id=template_id,
                target_ids=target_ids,
                owner_id=owners.pop(),
                now=now,
                progress=progress,
                total_steps=total_steps,
            )
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            seeded = self._mark_seeded(target_ids, now, duration_ms, template_version)
            if progress is not None:
                progress("campaign", total_steps, total_steps)
            session.commit()
        except BaseException as exc:
            session.rollback()
            log.error(
                "seeding.failed",
                extra={**context, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]},
            )
            raise
        for target in targets:
            for key, value in seeded.items():
                set_committed_value(target, key, value)
        per_campaign = {table: count // len(target_ids) for table, count in rows.items()}
        per_campaign["image_blobs"] = 0
        log.info(
            "seeding.finished",
            extra={
                **context,
                "duration_ms": duration_ms,
                "with_commit_ms": round((time.perf_counter() - started) * 1000, 1),
                "rows": per_campaign,
            },
        )
        return [
            SeedResult(campaign_id=cid, method=METHOD, duration_ms=duration_ms, rows=per_campaign)
            for cid in target_ids
        ]

    def _mark_seeded(
        self,
        target_ids: list[uuid.UUID],
        now: datetime,
        duration_ms: float,
        version: int | None,
    ) -> dict[str, Any]:
        """One guarded UPDATE: refuses (SeedingError) when a campaign was seeded meanwhile."""
        campaigns = table_of(Campaign)
        values = {
            "seeded_at": utcnow(),
            "seeding_method": METHOD,
            "seeding_duration_ms": duration_ms,
            "template_version": version,
            "updated_at": now,
        }
        updated = rowcount(
            self.session.execute(
                sa.update(campaigns)
                .where(campaigns.c.id.in_(target_ids), campaigns.c.seeded_at.is_(None))
                .values(**values)
            )
        )
        if updated != len(target_ids):
            missing = len(target_ids) - updated
            raise SeedingError(f"{missing} of the campaigns are missing or were seeded meanwhile")
        return values
