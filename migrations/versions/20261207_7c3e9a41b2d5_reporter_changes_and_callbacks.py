"""reporter's changes as ticket events (kind, detail), community contact details, callback requests

Revision ID: 7c3e9a41b2d5
Revises: f2a3b4c5d6e7
Create Date: 2026-12-07 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c3e9a41b2d5'
down_revision: str | None = 'f2a3b4c5d6e7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMUNITY_COLUMNS = (
    ('phone', sa.String(length=64)), ('address', sa.Text()), ('hours', sa.String(length=200)),
    ('center_name', sa.String(length=200)), ('center_phone', sa.String(length=64)),
    ('center_address', sa.Text()), ('center_hours', sa.String(length=200)),
)


def upgrade() -> None:
    op.add_column('ticket_events', sa.Column('kind', sa.String(length=16), nullable=False, server_default='status'))
    op.add_column('ticket_events', sa.Column('detail', sa.JSON(), nullable=True))
    for name, type_ in COMMUNITY_COLUMNS:
        op.add_column('communities', sa.Column(name, type_, nullable=True))
    op.create_table(
        'callback_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=True),
        sa.Column('community_id', sa.Integer(), nullable=True),
        sa.Column('said', sa.Text(), nullable=True),
        sa.Column('state', sa.Enum('open', 'done', name='callbackstate', native_enum=False, length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('done_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_callback_requests_person_id_people'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_callback_requests_grid_id_grids')),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                                name=op.f('fk_callback_requests_community_id_communities')),
        sa.ForeignKeyConstraint(['done_by_id'], ['people.id'], name=op.f('fk_callback_requests_done_by_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_requests')),
    )
    op.create_index(op.f('ix_callback_requests_person_id'), 'callback_requests', ['person_id'], unique=False)
    op.create_index(op.f('ix_callback_requests_state'), 'callback_requests', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_callback_requests_state'), table_name='callback_requests')
    op.drop_index(op.f('ix_callback_requests_person_id'), table_name='callback_requests')
    op.drop_table('callback_requests')
    with op.batch_alter_table('communities', recreate='never') as batch:
        for name, _ in reversed(COMMUNITY_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table('ticket_events', recreate='never') as batch:
        batch.drop_column('detail')
        batch.drop_column('kind')
