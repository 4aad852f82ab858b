"""fillfactor on campaign content tables (PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

A pool claim rewrites the timestamps (and owners) of every content row of the claimed campaign.
With free space left in each page, PostgreSQL makes those heap-only (HOT) updates that touch no
index, which halves the cost of a claim. Only new pages are affected; run `VACUUM FULL` on an
existing deployment to repack old ones. SQLite has no such setting: nothing to do there.
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = (
    'campaigns', 'schticks', 'weapons', 'factions', 'junctures', 'characters', 'vehicles',
    'image_positions',
)
FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} RESET (fillfactor)')
