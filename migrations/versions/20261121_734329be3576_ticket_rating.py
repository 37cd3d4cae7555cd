"""ticket rating and resolution photo

Revision ID: 734329be3576
Revises: bde2c7ecde33
Create Date: 2026-11-21 20:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '734329be3576'
down_revision: str | None = 'bde2c7ecde33'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolution_photo_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('rated_at', sa.DateTime(), nullable=True))



def downgrade() -> None:
    # Plain columns without constraints or indexes: SQLite (>= 3.35) drops them in
    # place. Recreating the table instead would fail with foreign_keys=ON, because
    # ticket_events and ticket_followers reference tickets.
    with op.batch_alter_table('tickets', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('rated_at')
        batch_op.drop_column('rating')
        batch_op.drop_column('resolution_photo_id')
