"""Several bot processes on one database: the shared rate budget, and inbox.rasa_sent_at

Revision ID: 19b1c2d3e4f5
Revises: 17f0a2b3c4d5
Create Date: 2026-12-09 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '19b1c2d3e4f5'
down_revision: str | None = '18f1d2e3f4a5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'rate_budget',
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('tat', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_budget')),
    )
    with op.batch_alter_table('inbox') as batch:
        batch.add_column(sa.Column('rasa_sent_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox') as batch:
        batch.drop_column('rasa_sent_at')
    op.drop_table('rate_budget')
