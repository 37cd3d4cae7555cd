"""tickets.submission_key: a submission retried after a crash files nothing twice

Revision ID: d0e1f2a3b4c5
Revises: c9d0e1f2a3b4
Create Date: 2026-12-06 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd0e1f2a3b4c5'
down_revision: str | None = 'c9d0e1f2a3b4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('submission_key', sa.String(length=64), nullable=True))
    op.create_index('ix_tickets_submission_key', 'tickets', ['submission_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_tickets_submission_key', table_name='tickets')
    # Without its index a plain column: SQLite (>= 3.35) drops it in place (recreating the table
    # would fail with foreign_keys=ON: ticket_events and ticket_followers reference tickets).
    with op.batch_alter_table('tickets', recreate='never') as batch:
        batch.drop_column('submission_key')
