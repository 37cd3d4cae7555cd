"""Kept figures of closed months (kept_figures, kept_figure_versions) and outbox.payload_after

Revision ID: 18f1d2e3f4a5
Revises: 17f0a2b3c4d5
Create Date: 2026-12-09 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '18f1d2e3f4a5'
down_revision: str | None = '17f0a2b3c4d5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('payload_after', sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        'kept_figures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('month_start', sa.DateTime(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], ondelete='CASCADE',
                                name=op.f('fk_kept_figures_grid_id_grids')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kept_figures')),
        sa.UniqueConstraint('month_start', 'grid_id', name=op.f('uq_kept_figures_month_start')),
    )
    op.create_table(
        'kept_figure_versions',
        sa.Column('month', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('month', name=op.f('pk_kept_figure_versions')),
    )


def downgrade() -> None:
    op.drop_table('kept_figure_versions')
    op.drop_table('kept_figures')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('payload_after')
