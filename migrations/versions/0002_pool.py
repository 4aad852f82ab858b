"""pool: pool columns on campaigns, pool_events, pool_settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

An existing deployment receives the pool as its own revision: the columns are added with
defaults that leave every existing campaign an ordinary, non-pool campaign. A master template
that already exists gets version 1: pool campaigns are built and claimed only for the master
template's version, so without one the pool would never fill.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_pool', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('pool_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('pool_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('pool_created_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('template_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('seeding_method', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('seeding_duration_ms', sa.Double(), nullable=True))
        batch_op.create_index('ix_campaigns_activated_at', ['activated_at'], unique=False)
        batch_op.create_index('ix_campaigns_pool_claim', ['pool_type', 'template_version', 'user_id', 'pool_created_at'], unique=False, postgresql_where=sa.text("is_pool AND pool_status = 'ready'"), sqlite_where=sa.text("is_pool AND pool_status = 'ready'"))
        batch_op.create_index('ix_campaigns_pool_status', ['pool_status', 'pool_type'], unique=False, postgresql_where=sa.text('is_pool'), sqlite_where=sa.text('is_pool'))

    op.create_table('pool_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('pool_type', sa.String(length=16), nullable=True),
    sa.Column('duration_ms', sa.Double(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_events'))
    )
    with op.batch_alter_table('pool_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pool_events_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pool_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pool_events_kind_created_at'), ['kind', 'created_at'], unique=False)

    op.create_table('pool_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_pool_settings_updated_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_pool_settings'))
    )
    op.execute(
        "UPDATE campaigns SET template_version = 1 "
        "WHERE is_master_template AND template_version IS NULL"
    )


def downgrade() -> None:
    op.drop_table('pool_settings')
    with op.batch_alter_table('pool_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pool_events_kind_created_at'))
        batch_op.drop_index(batch_op.f('ix_pool_events_created_at'))
        batch_op.drop_index(batch_op.f('ix_pool_events_campaign_id'))

    op.drop_table('pool_events')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_pool_status', postgresql_where=sa.text('is_pool'), sqlite_where=sa.text('is_pool'))
        batch_op.drop_index('ix_campaigns_pool_claim', postgresql_where=sa.text("is_pool AND pool_status = 'ready'"), sqlite_where=sa.text("is_pool AND pool_status = 'ready'"))
        batch_op.drop_index('ix_campaigns_activated_at')
        batch_op.drop_column('seeding_duration_ms')
        batch_op.drop_column('seeding_method')
        batch_op.drop_column('template_version')
        batch_op.drop_column('activated_at')
        batch_op.drop_column('pool_created_at')
        batch_op.drop_column('pool_status')
        batch_op.drop_column('pool_type')
        batch_op.drop_column('is_pool')
