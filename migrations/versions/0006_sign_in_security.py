"""sign-in security: session versions, account lockout and server-side portal sign-ins

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

`users.session_version` is part of the id kept in session and remember cookies (and of the
JWTs of the Chi War clients): raising it ends every sign-in of that user. `failed_sign_ins`
and `locked_until` carry the account lockout. `login_sessions` holds one row per portal sign-in
so that logging out ends that browser's session on the server, copied cookies included
(docs/security.md).
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: SQLite's batch mode rebuilds the table and would lose
    # the expression index uq_users_email_lower (it cannot reflect it).
    op.add_column('users', sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))
    op.add_column('users', sa.Column('failed_sign_ins', sa.Integer(), server_default='0', nullable=False))
    op.add_column('users', sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))

    op.create_table('login_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_login_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_sessions'))
    )
    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_sessions_user_id'))
    op.drop_table('login_sessions')

    # SQLite (3.35+) and PostgreSQL both drop a column in place, which keeps the expression
    # index on lower(email) that a batch copy would lose.
    op.drop_column('users', 'locked_until')
    op.drop_column('users', 'failed_sign_ins')
    op.drop_column('users', 'session_version')
