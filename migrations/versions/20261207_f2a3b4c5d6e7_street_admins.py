"""role_grants.street_id: a street admin holds in every community of their street

Revision ID: f2a3b4c5d6e7
Revises: 7c3e91a5d2f0
Create Date: 2026-12-07 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f2a3b4c5d6e7'
down_revision: str | None = '7c3e91a5d2f0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('role_grants') as batch:
        batch.add_column(sa.Column('street_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_role_grants_street_id_streets', 'streets', ['street_id'], ['id'])


def downgrade() -> None:
    op.execute("DELETE FROM role_grants WHERE role = 'street_admin'")
    with op.batch_alter_table('role_grants') as batch:
        batch.drop_constraint('fk_role_grants_street_id_streets', type_='foreignkey')
        batch.drop_column('street_id')
