"""invite codes

Revision ID: 5e7a2c9d1b40
Revises: a1d17e6b0c01
Create Date: 2026-11-24 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5e7a2c9d1b40'
down_revision: str | None = 'a1d17e6b0c01'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'invite_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('branch_id', sa.Integer(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_by_id', sa.Integer(), nullable=True),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_invite_codes_branch_id_branches'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['people.id'],
                                name=op.f('fk_invite_codes_created_by_id_people'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['used_by_id'], ['people.id'], name=op.f('fk_invite_codes_used_by_id_people'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invite_codes')),
        sa.UniqueConstraint('code', name=op.f('uq_invite_codes_code')),
    )
    op.create_index(op.f('ix_invite_codes_branch_id'), 'invite_codes', ['branch_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_invite_codes_branch_id'), table_name='invite_codes')
    op.drop_table('invite_codes')
