"""党员学习资料库 and 补学: study_materials, study_catchups

Revision ID: 21c1d2e3f4a5
Revises: 21a1b2c3d4e5 (re-chained after 共享空间 and 战时 reached main; the brief gave 20c2d3e4f5a6)
Create Date: 2026-12-15 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '21c1d2e3f4a5'
down_revision: str | None = '21a1b2c3d4e5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    op.create_table(
        'study_materials',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('branch_id', sa.Integer(), nullable=True),
        sa.Column('occurrence_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.Enum('text', 'document', 'photo', 'link', name='materialkind',
                                  native_enum=False, length=16), nullable=False),
        sa.Column('topic', sa.String(length=40), nullable=True),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('url', sa.String(length=1000), nullable=True),
        sa.Column('file_id', sa.String(length=300), nullable=True),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('code', sa.String(length=64), nullable=True),
        sa.Column('added_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        _fk('study_materials', 'community_id', 'communities', 'CASCADE'),
        _fk('study_materials', 'branch_id', 'branches', 'CASCADE'),
        _fk('study_materials', 'occurrence_id', 'event_occurrences', 'SET NULL'),
        _fk('study_materials', 'added_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_study_materials')),
        sa.UniqueConstraint('code', name=op.f('uq_study_materials_code')),
    )
    for column in ('community_id', 'branch_id', 'occurrence_id', 'topic'):
        op.create_index(op.f(f'ix_study_materials_{column}'), 'study_materials', [column], unique=False)
    op.create_table(
        'study_catchups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('occurrence_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('voice_file_id', sa.String(length=300), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        _fk('study_catchups', 'occurrence_id', 'event_occurrences', 'CASCADE'),
        _fk('study_catchups', 'person_id', 'people', 'CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_study_catchups')),
        sa.UniqueConstraint('occurrence_id', 'person_id', name=op.f('uq_study_catchups_occurrence_id')),
    )
    op.create_index(op.f('ix_study_catchups_person_id'), 'study_catchups', ['person_id'], unique=False)


def downgrade() -> None:
    op.drop_table('study_catchups')
    op.drop_table('study_materials')
