"""Chi War clients: the user's current campaign, signed-out JWTs, CLI device sign-in codes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

`users.current_campaign_id` is what `POST /api/v2/campaigns/current` sets (NULL when the
campaign is deleted). `jwt_denylist` holds the `jti` of each JWT signed out before it expired.
`cli_auth_codes` are the device sign-ins of `chiwar login`, stored as SHA-256 hashes.
See docs/api.md.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _rebuild_users_on_sqlite(change) -> None:
    """SQLite alters a column with a foreign key only by rebuilding the table (a batch), which
    it lets drop the old `users` only with foreign key enforcement off (campaigns reference
    it), and which loses the expression index on lower(email) (reflection cannot see it)."""
    op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('users', schema=None) as batch_op:
        change(batch_op)
    op.execute('CREATE UNIQUE INDEX IF NOT EXISTS uq_users_email_lower ON users (lower(email))')
    op.execute('PRAGMA foreign_keys=ON')


def _add_current_campaign(batch_op) -> None:
    batch_op.add_column(sa.Column('current_campaign_id', sa.Uuid(), nullable=True))
    batch_op.create_foreign_key(
        'fk_users_current_campaign_id_campaigns',
        'campaigns',
        ['current_campaign_id'],
        ['id'],
        ondelete='SET NULL',
    )


def _drop_current_campaign(batch_op) -> None:
    batch_op.drop_constraint('fk_users_current_campaign_id_campaigns', type_='foreignkey')
    batch_op.drop_column('current_campaign_id')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_users_on_sqlite(_add_current_campaign)
    else:
        with op.batch_alter_table('users', schema=None) as batch_op:
            _add_current_campaign(batch_op)

    op.create_table(
        'jwt_denylist',
        sa.Column('jti', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name='fk_jwt_denylist_user_id_users', ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('jti', name='pk_jwt_denylist'),
    )
    op.create_index('ix_jwt_denylist_user_id', 'jwt_denylist', ['user_id'])
    op.create_index('ix_jwt_denylist_expires_at', 'jwt_denylist', ['expires_at'])

    op.create_table(
        'cli_auth_codes',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name='fk_cli_auth_codes_user_id_users', ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name='pk_cli_auth_codes'),
        sa.UniqueConstraint('code_hash', name='uq_cli_auth_codes_code_hash'),
    )
    op.create_index('ix_cli_auth_codes_user_id', 'cli_auth_codes', ['user_id'])
    op.create_index('ix_cli_auth_codes_expires_at', 'cli_auth_codes', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_cli_auth_codes_expires_at', table_name='cli_auth_codes')
    op.drop_index('ix_cli_auth_codes_user_id', table_name='cli_auth_codes')
    op.drop_table('cli_auth_codes')
    op.drop_index('ix_jwt_denylist_expires_at', table_name='jwt_denylist')
    op.drop_index('ix_jwt_denylist_user_id', table_name='jwt_denylist')
    op.drop_table('jwt_denylist')
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_users_on_sqlite(_drop_current_campaign)
    else:
        with op.batch_alter_table('users', schema=None) as batch_op:
            _drop_current_campaign(batch_op)
