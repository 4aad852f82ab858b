"""fillfactor 45 on the content tables a claim rewrites (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A claim gives every content row of the campaign a new row version (fresh timestamps). The
update is heap-only (HOT: no index entries, a small WAL record) only when the new version fits
on the same page, and since a claim rewrites EVERY row of a page, a page needs as much free
space as its rows use: fillfactor 70 (0003) left room for about a third of them, so most
schtick, weapon and character updates still inserted three index entries each (EXPLAIN ANALYZE
with WAL: 2,375 WAL records and 306 kB for 643 schticks; with 45: 643 records and 57 kB, and
the claim statement went from ~11 ms to ~5 ms). 45 rather than 50 leaves room for the line
pointers and for the last row that the fillfactor check lets in. The price is storage: content
pages are about half empty (docs/performance.md). Only new pages are affected; `VACUUM FULL`
repacks existing ones. The campaigns table keeps 70: its claim changes indexed columns, so that
update is never heap-only. SQLite has no such setting.
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = (
    'schticks', 'weapons', 'factions', 'junctures', 'characters', 'vehicles', 'image_positions',
)
FILLFACTOR = 45
PREVIOUS = 70  # revision 0003's value


def _set(fillfactor: int) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} SET (fillfactor = {fillfactor})')


def upgrade() -> None:
    _set(FILLFACTOR)


def downgrade() -> None:
    _set(PREVIOUS)
