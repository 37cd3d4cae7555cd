"""buttons and prompts: button data and pending questions in the database, not in a process

Revision ID: b8c9d0e1f2a3
Revises: a7b8c9d0e1f2
Create Date: 2026-12-06 07:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b8c9d0e1f2a3'
down_revision: str | None = 'a7b8c9d0e1f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('buttons',
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_buttons'))
    )
    op.create_index(op.f('ix_buttons_created_at'), 'buttons', ['created_at'], unique=False)
    op.create_table('prompts',
    sa.Column('telegram_user_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('telegram_user_id', name=op.f('pk_prompts'))
    )


def downgrade() -> None:
    op.drop_table('prompts')
    op.drop_index(op.f('ix_buttons_created_at'), table_name='buttons')
    op.drop_table('buttons')
