"""outbox: pieces already sent, the request in flight, and the unconfirmed state

Revision ID: f6a7b8c9d0e1
Revises: e5f6a7b8c9d0
Create Date: 2026-12-05 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f6a7b8c9d0e1'
down_revision: str | None = 'e5f6a7b8c9d0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # send_state is a VARCHAR(16) without a CHECK constraint: 'unconfirmed' needs no DDL.
    op.add_column('outbox', sa.Column('pieces_sent', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('outbox', sa.Column('in_flight', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # The older code knows no 'unconfirmed': such rows are not to be sent again, i.e. failed.
    op.execute("UPDATE outbox SET send_state = 'failed' WHERE send_state = 'unconfirmed'")
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('in_flight')
        batch.drop_column('pieces_sent')
