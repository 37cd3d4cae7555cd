"""the return visit asks two questions: tickets.solved beside tickets.rating

A resolved ticket in the old flow never had an answer for its current visit (any answer moved it
on), but `rating` kept the answer of an earlier visit after a reopening; the new flow reads
`rating` as this visit's satisfaction, so it is cleared on resolved tickets. Where an old answer
stays, `solved` is filled in from it (满意 and 基本满意 closed the ticket, 不满意 reopened it).

Revision ID: 17f0a2b3c4d5
Revises: 18e0c1d2e3f4
Create Date: 2026-12-08 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '17f0a2b3c4d5'
down_revision: str | None = '18e0c1d2e3f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('solved', sa.Boolean(), nullable=True))
    op.execute("UPDATE tickets SET rating = NULL, rated_at = NULL WHERE status = 'resolved'")
    op.execute("UPDATE tickets SET solved = (rating >= 2) WHERE rating IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('tickets', recreate='never') as batch_op:  # tickets are referenced: no copy
        batch_op.drop_column('solved')
