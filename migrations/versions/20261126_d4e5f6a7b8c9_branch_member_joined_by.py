"""branch members: how each joined (registry, invite, grant)

Revision ID: d4e5f6a7b8c9
Revises: c8d9e0f1a2b3
Create Date: 2026-11-26 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd4e5f6a7b8c9'
down_revision: str | None = 'c8d9e0f1a2b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('branch_members', sa.Column('joined_by', sa.String(length=16), nullable=False,
                                              server_default='registry'))
    # Members who redeemed an invite code of their branch joined by invite.
    op.execute(
        "UPDATE branch_members SET joined_by = 'invite' WHERE EXISTS (SELECT 1 FROM invite_codes "
        "WHERE invite_codes.branch_id = branch_members.branch_id "
        "AND invite_codes.used_by_id = branch_members.person_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table('branch_members') as batch:
        batch.drop_column('joined_by')
