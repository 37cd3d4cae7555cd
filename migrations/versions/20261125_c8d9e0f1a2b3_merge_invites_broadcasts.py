"""merge heads: invite codes and broadcasts

Revision ID: c8d9e0f1a2b3
Revises: 5e7a2c9d1b40, b7c4a2e91f10
Create Date: 2026-11-25 00:00:00.000000+00:00
"""

from collections.abc import Sequence

revision: str = 'c8d9e0f1a2b3'
down_revision: str | tuple[str, ...] | None = ('5e7a2c9d1b40', 'b7c4a2e91f10')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
