"""三张清单: resources, needs, projects, project_ratings

Revision ID: 20c2d3e4f5a6
Revises: 20a0b1c2d3e4
Create Date: 2026-12-12 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '20c2d3e4f5a6'
down_revision: str | None = '20a0b1c2d3e4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    op.create_table(
        'resources',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=True),
        sa.Column('organisation', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('available_from', sa.Date(), nullable=False),
        sa.Column('available_to', sa.Date(), nullable=False),
        sa.Column('offered_by_id', sa.Integer(), nullable=True),
        sa.Column('code', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('resources', 'community_id', 'communities'),
        _fk('resources', 'organisation_id', 'party_organisations'),
        _fk('resources', 'offered_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_resources')),
        sa.UniqueConstraint('code', name=op.f('uq_resources_code')),
    )
    op.create_index(op.f('ix_resources_community_id'), 'resources', ['community_id'], unique=False)
    op.create_table(
        'needs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('place', sa.String(length=200), nullable=False),
        sa.Column('beneficiaries', sa.String(length=200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'listed', 'declined', 'met', name='needstatus',
                                    native_enum=False, length=16), nullable=False),
        sa.Column('posted_by_id', sa.Integer(), nullable=True),
        sa.Column('reviewed_by_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('consultation_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('needs', 'consultation_id', 'consultations', 'SET NULL'),
        sa.UniqueConstraint('consultation_id', name=op.f('uq_needs_consultation_id')),
        _fk('needs', 'community_id', 'communities'),
        _fk('needs', 'grid_id', 'grids'),
        _fk('needs', 'posted_by_id', 'people', 'SET NULL'),
        _fk('needs', 'reviewed_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_needs')),
    )
    for column in ('community_id', 'grid_id', 'status'):
        op.create_index(op.f(f'ix_needs_{column}'), 'needs', [column], unique=False)
    op.create_table(
        'projects',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('need_id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('due', sa.Date(), nullable=False),
        sa.Column('status', sa.Enum('planned', 'under_way', 'done', 'evaluated', name='projectstatus',
                                    native_enum=False, length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('photos', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        _fk('projects', 'community_id', 'communities'),
        _fk('projects', 'need_id', 'needs'),
        _fk('projects', 'resource_id', 'resources'),
        _fk('projects', 'owner_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
        sa.UniqueConstraint('need_id', name=op.f('uq_projects_need_id')),
    )
    op.create_index(op.f('ix_projects_community_id'), 'projects', ['community_id'], unique=False)
    op.create_table(
        'project_ratings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('stars', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('project_ratings', 'project_id', 'projects', 'CASCADE'),
        _fk('project_ratings', 'person_id', 'people', 'CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_project_ratings')),
        sa.UniqueConstraint('project_id', 'person_id', name=op.f('uq_project_ratings_project_id')),
    )
    op.create_index(op.f('ix_project_ratings_project_id'), 'project_ratings', ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_table('project_ratings')
    op.drop_table('projects')
    op.drop_table('needs')
    op.drop_table('resources')
