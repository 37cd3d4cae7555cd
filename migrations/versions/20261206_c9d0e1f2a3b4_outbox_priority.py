"""outbox priority: 0 replies and emergencies, 1 cards and reminders, 2 broadcasts

Revision ID: c9d0e1f2a3b4
Revises: b8c9d0e1f2a3
Create Date: 2026-12-06 08:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c9d0e1f2a3b4'
down_revision: str | None = 'b8c9d0e1f2a3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('priority', sa.SmallInteger(), nullable=False, server_default='1'))
    # what was queued as a reply before keeps its place in front
    op.execute("UPDATE outbox SET priority = 0 WHERE kind = 'reply'")


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('priority')
