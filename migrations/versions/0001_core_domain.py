"""core domain: users, tokens, campaigns, content, images

Revision ID: 0001
Revises: 
Create Date: 2026-11-24

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('image_blobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('service_name', sa.String(length=20), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_blobs')),
    sa.UniqueConstraint('key', name=op.f('uq_image_blobs_key'))
    )
    with op.batch_alter_table('image_blobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_blobs_checksum'), ['checksum'], unique=False)

    op.create_table('image_positions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('positionable_type', sa.String(length=50), nullable=False),
    sa.Column('positionable_id', sa.Uuid(), nullable=False),
    sa.Column('context', sa.String(length=50), nullable=False),
    sa.Column('x_position', sa.Double(), server_default='0', nullable=False),
    sa.Column('y_position', sa.Double(), server_default='0', nullable=False),
    sa.Column('style_overrides', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_positions'))
    )
    with op.batch_alter_table('image_positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_positions_positionable_type_positionable_id_context'), ['positionable_type', 'positionable_id', 'context'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('admin', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('gamemaster', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    # Emails are unique case-insensitively (the model stores them as typed, for display).
    op.create_index('uq_users_email_lower', 'users', [sa.text('lower(email)')], unique=True)
    op.create_table('api_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('is_master_template', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('seeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_campaigns_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_campaigns_user_id_name'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_user_id'), ['user_id'], unique=False)

    op.create_table('image_attachments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('record_type', sa.String(length=50), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('blob_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['image_blobs.id'], name=op.f('fk_image_attachments_blob_id_image_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_attachments'))
    )
    with op.batch_alter_table('image_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_attachments_blob_id'), ['blob_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_image_attachments_record_type_record_id_name'), ['record_type', 'record_id', 'name'], unique=False)

    op.create_table('factions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_factions_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_factions'))
    )
    with op.batch_alter_table('factions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_factions_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('schticks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('path', sa.String(length=100), nullable=True),
    sa.Column('color', sa.String(length=32), nullable=True),
    sa.Column('bonus', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('archetypes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('prerequisite_id', sa.Uuid(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_schticks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prerequisite_id'], ['schticks.id'], name=op.f('fk_schticks_prerequisite_id_schticks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schticks')),
    sa.UniqueConstraint('campaign_id', 'category', 'name', name=op.f('uq_schticks_campaign_id_category_name'))
    )
    with op.batch_alter_table('schticks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schticks_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_schticks_prerequisite_id'), ['prerequisite_id'], unique=False)

    op.create_table('weapons',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('damage', sa.Integer(), nullable=True),
    sa.Column('concealment', sa.Integer(), nullable=True),
    sa.Column('reload_value', sa.Integer(), nullable=True),
    sa.Column('juncture', sa.String(length=100), nullable=True),
    sa.Column('mook_bonus', sa.Integer(), server_default='0', nullable=False),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('kachunk', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_weapons_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_weapons')),
    sa.UniqueConstraint('campaign_id', 'name', name=op.f('uq_weapons_campaign_id_name'))
    )
    with op.batch_alter_table('weapons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_weapons_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('junctures',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('faction_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_junctures_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['faction_id'], ['factions.id'], name=op.f('fk_junctures_faction_id_factions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_junctures'))
    )
    with op.batch_alter_table('junctures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_junctures_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_junctures_faction_id'), ['faction_id'], unique=False)

    op.create_table('characters',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('faction_id', sa.Uuid(), nullable=True),
    sa.Column('juncture_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('action_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('description', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('skills', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('is_template', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('color', sa.String(length=32), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_characters_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['faction_id'], ['factions.id'], name=op.f('fk_characters_faction_id_factions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['juncture_id'], ['junctures.id'], name=op.f('fk_characters_juncture_id_junctures'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_characters_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_characters'))
    )
    with op.batch_alter_table('characters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_characters_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_characters_faction_id'), ['faction_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_characters_juncture_id'), ['juncture_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_characters_user_id'), ['user_id'], unique=False)

    op.create_table('vehicles',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('faction_id', sa.Uuid(), nullable=True),
    sa.Column('juncture_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('action_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_vehicles_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['faction_id'], ['factions.id'], name=op.f('fk_vehicles_faction_id_factions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['juncture_id'], ['junctures.id'], name=op.f('fk_vehicles_juncture_id_junctures'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_vehicles_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicles'))
    )
    with op.batch_alter_table('vehicles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vehicles_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicles_faction_id'), ['faction_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicles_juncture_id'), ['juncture_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicles_user_id'), ['user_id'], unique=False)

    op.create_table('carries',
    sa.Column('character_id', sa.Uuid(), nullable=False),
    sa.Column('weapon_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['character_id'], ['characters.id'], name=op.f('fk_carries_character_id_characters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['weapon_id'], ['weapons.id'], name=op.f('fk_carries_weapon_id_weapons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('character_id', 'weapon_id', name=op.f('pk_carries'))
    )
    with op.batch_alter_table('carries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carries_weapon_id'), ['weapon_id'], unique=False)

    op.create_table('character_schticks',
    sa.Column('character_id', sa.Uuid(), nullable=False),
    sa.Column('schtick_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['character_id'], ['characters.id'], name=op.f('fk_character_schticks_character_id_characters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['schtick_id'], ['schticks.id'], name=op.f('fk_character_schticks_schtick_id_schticks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('character_id', 'schtick_id', name=op.f('pk_character_schticks'))
    )
    with op.batch_alter_table('character_schticks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_character_schticks_schtick_id'), ['schtick_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('character_schticks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_character_schticks_schtick_id'))

    op.drop_table('character_schticks')
    with op.batch_alter_table('carries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_carries_weapon_id'))

    op.drop_table('carries')
    with op.batch_alter_table('vehicles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vehicles_user_id'))
        batch_op.drop_index(batch_op.f('ix_vehicles_juncture_id'))
        batch_op.drop_index(batch_op.f('ix_vehicles_faction_id'))
        batch_op.drop_index(batch_op.f('ix_vehicles_campaign_id'))

    op.drop_table('vehicles')
    with op.batch_alter_table('characters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_characters_user_id'))
        batch_op.drop_index(batch_op.f('ix_characters_juncture_id'))
        batch_op.drop_index(batch_op.f('ix_characters_faction_id'))
        batch_op.drop_index(batch_op.f('ix_characters_campaign_id'))

    op.drop_table('characters')
    with op.batch_alter_table('junctures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_junctures_faction_id'))
        batch_op.drop_index(batch_op.f('ix_junctures_campaign_id'))

    op.drop_table('junctures')
    with op.batch_alter_table('weapons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_weapons_campaign_id'))

    op.drop_table('weapons')
    with op.batch_alter_table('schticks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schticks_prerequisite_id'))
        batch_op.drop_index(batch_op.f('ix_schticks_campaign_id'))

    op.drop_table('schticks')
    with op.batch_alter_table('factions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_factions_campaign_id'))

    op.drop_table('factions')
    with op.batch_alter_table('image_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_attachments_record_type_record_id_name'))
        batch_op.drop_index(batch_op.f('ix_image_attachments_blob_id'))

    op.drop_table('image_attachments')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_user_id'))

    op.drop_table('campaigns')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_index('uq_users_email_lower', table_name='users')
    op.drop_table('users')
    with op.batch_alter_table('image_positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_positions_positionable_type_positionable_id_context'))

    op.drop_table('image_positions')
    with op.batch_alter_table('image_blobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_blobs_checksum'))

    op.drop_table('image_blobs')
