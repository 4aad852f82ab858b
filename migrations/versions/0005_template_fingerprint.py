"""template fingerprint: the content hash of the master template at its template_version

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

The master template is also edited in place (by the Chi War manager, or by an admin with SQL),
which changes what new campaigns get without changing `template_version`. The monitor compares
a hash of the template's content with this column and bumps the version when they differ
(docs/pool.md, "Template versions and rolling rebuilds"). It sits on the campaign row, next to
`template_version`, so one guarded UPDATE changes both at once. NULL (every existing row) means
"not fingerprinted yet": the first monitor pass records it without bumping.
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template_fingerprint', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('template_fingerprint')
