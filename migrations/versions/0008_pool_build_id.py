"""pool build id: the build (one seeding transaction) a pool campaign is part of

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

Refills build in parallel and can seed several campaigns in one transaction (docs/pool.md,
"Refills"). The campaigns a builder reserves together carry the same `pool_build_id`, so the
builds in flight of a pool (capped by `max_parallel_builds`) are counted as distinct build ids
among its `building` rows, not as campaigns. NULL (every existing row, and rows written by an
older release during an upgrade) counts as a build of its own.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pool_build_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('pool_build_id')
