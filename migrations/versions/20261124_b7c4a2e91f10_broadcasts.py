"""broadcasts

Revision ID: b7c4a2e91f10
Revises: a1d17e6b0c01
Create Date: 2026-11-24 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b7c4a2e91f10'
down_revision: str | None = 'a1d17e6b0c01'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sender_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('audience', sa.Enum('members', 'residents', 'volunteers', 'community', name='broadcastaudience', native_enum=False, length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('photo_file_id', sa.String(length=255), nullable=True),
    sa.Column('document_file_id', sa.String(length=255), nullable=True),
    sa.Column('essential', sa.Boolean(), nullable=False),
    sa.Column('read_button', sa.Boolean(), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.Enum('draft', 'queued', 'sending', 'done', 'cancelled', name='broadcaststate', native_enum=False, length=16), nullable=False),
    sa.Column('progress_chat_id', sa.BigInteger(), nullable=True),
    sa.Column('progress_message_id', sa.BigInteger(), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_broadcasts_branch_id_branches')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_broadcasts_community_id_communities')),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_broadcasts_grid_id_grids')),
    sa.ForeignKeyConstraint(['sender_id'], ['people.id'], name=op.f('fk_broadcasts_sender_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index('ix_broadcasts_due', ['state', 'scheduled_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_broadcasts_sender_id'), ['sender_id'], unique=False)

    op.create_table('broadcast_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'sending', 'sent', 'blocked', 'failed', 'unconfirmed', name='deliverystate', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('read_at', sa.DateTime(), nullable=True),
    sa.Column('telegram_message_id', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], name=op.f('fk_broadcast_deliveries_broadcast_id_broadcasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_broadcast_deliveries_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcast_deliveries')),
    sa.UniqueConstraint('broadcast_id', 'person_id', name=op.f('uq_broadcast_deliveries_broadcast_id'))
    )
    with op.batch_alter_table('broadcast_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_broadcast_deliveries_due', ['broadcast_id', 'state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_broadcast_deliveries_person_id'), ['person_id'], unique=False)

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_off', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('notify_off')

    with op.batch_alter_table('broadcast_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcast_deliveries_person_id'))
        batch_op.drop_index('ix_broadcast_deliveries_due')

    op.drop_table('broadcast_deliveries')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcasts_sender_id'))
        batch_op.drop_index('ix_broadcasts_due')

    op.drop_table('broadcasts')
