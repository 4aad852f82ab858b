"""A content hash of a template campaign, computed by the database, to notice edits in place.

The master template is edited where it lies (by the Chi War manager itself, or by an admin
with SQL), and nothing tells us: `updated_at` is not reliably touched by hand-written SQL. So
the monitor hashes the content every minute and compares it with the hash stored next to
`template_version` (`campaigns.template_fingerprint`).

What is hashed is exactly what the batch seeder copies (its `PLAN`, so a table added to the
copy is fingerprinted without anyone remembering to add it here) plus the template
campaign's description: every column except the clock (`created_at`, `updated_at`), the
owner (`user_id`, which copies replace) and the constant `campaign_id`. Ids and foreign keys
are kept, so a re-linked prerequisite or a swapped image counts as an edit.

It is computed set-based: each row becomes text (PostgreSQL: the ROW of its columns cast to
text, which is cheaper than building JSON; SQLite: a JSON array), hashed with md5 by the
database; each table's row hashes are sorted and hashed again; one SELECT returns one
short hash per table and Python combines them with SHA-256. Sorting by the row hashes makes
the result independent of row order and needs no key, so link tables hash like the others.
Nothing crosses the wire but a dozen 32-character strings. SQLite has neither md5 nor an
ordered string aggregate (before 3.44), so both are registered on its connection (a few
microseconds, in Python, same results within one database). Fingerprints are compared only
with fingerprints of the same database, never across backends.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import InstrumentedAttribute, Session

from portal.models import Campaign, Character
from portal.services.seeding.batch import PLAN, TableCopy
from portal.services.template.scope import owned_by_campaign

# Columns that say nothing about the content a copy gets.
NOT_HASHED = frozenset({"created_at", "updated_at", "user_id", "campaign_id"})
SQLITE_ROW_HASH = "cp_md5"
SQLITE_SORTED_HASH = "cp_sorted_md5"


def _md5(text: str | None) -> str | None:
    return None if text is None else hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class _SortedMd5:
    """SQLite aggregate: md5 of the sorted values concatenated (PostgreSQL: string_agg ORDER BY)."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def step(self, value: str | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str | None:
        return _md5("".join(sorted(self.values))) if self.values else None


def _register_sqlite_functions(session: Session) -> None:
    """Give this SQLite connection the two hash functions (re-registering is harmless)."""
    raw = session.connection().connection.driver_connection
    if raw is None:  # only a closed connection has no driver connection
        raise RuntimeError("the session's connection is closed")
    raw.create_function(SQLITE_ROW_HASH, 1, _md5, deterministic=True)
    raw.create_aggregate(SQLITE_SORTED_HASH, 1, _SortedMd5)


def _row_hash(
    dialect: str, columns: Sequence[sa.ColumnElement[Any] | InstrumentedAttribute[Any]]
) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        return sa.func.md5(sa.cast(sa.func.row(*columns), sa.Text))
    return sa.Function(SQLITE_ROW_HASH, sa.func.json_array(*columns), type_=sa.String())


def _sorted_hash(dialect: str, row_hash: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        in_order = aggregate_order_by(sa.literal(""), row_hash.collate("C"))
        return sa.func.md5(sa.func.string_agg(row_hash, in_order))
    return sa.Function(SQLITE_SORTED_HASH, row_hash, type_=sa.String())


def _scope(step: TableCopy, campaign_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """The rows of `step`'s table that belong to the campaign (as the batch seeder picks them)."""
    table = step.table
    if step.has_campaign:
        return table.c.campaign_id == campaign_id
    if step.poly is not None:
        id_column, type_column = step.poly
        return owned_by_campaign(table.c[type_column], table.c[id_column], campaign_id)
    owner_column = next(iter(step.remap))  # link tables: the owning end comes first
    if step.remap[owner_column] != "Character":
        raise NotImplementedError(f"no fingerprint scope for link table {step.table_name}")
    return table.c[owner_column].in_(
        sa.select(Character.id).where(Character.campaign_id == campaign_id)
    )


def fingerprint_query(dialect: str, campaign_id: uuid.UUID) -> sa.Select[*tuple[Any, ...]]:
    """One SELECT with one column per hashed table: its sorted row hashes, hashed."""
    parts: list[sa.Label[Any]] = []
    for step in PLAN:
        columns = [c for c in step.table.c if c.name not in NOT_HASHED]
        row_hash = _row_hash(dialect, columns)
        hashed = sa.select(_sorted_hash(dialect, row_hash)).where(_scope(step, campaign_id))
        parts.append(hashed.scalar_subquery().label(step.table_name))
    own = sa.select(_row_hash(dialect, [Campaign.description])).where(Campaign.id == campaign_id)
    parts.append(own.scalar_subquery().label("campaign"))
    return sa.select(*parts)


def template_fingerprint(session: Session, campaign_id: uuid.UUID) -> str:
    """The SHA-256 (hex) of the campaign's content as the batch seeder would copy it.

    Sees the session's own uncommitted rows, so a template writer can fingerprint what it is
    about to commit."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        _register_sqlite_functions(session)
    row = session.execute(fingerprint_query(dialect, campaign_id)).one()
    digest = hashlib.sha256()
    for name, value in row._mapping.items():
        digest.update(f"{name}={value or ''}\n".encode())
    return digest.hexdigest()
