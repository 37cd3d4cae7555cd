"""战时 mobilisation: incidents, their grids, calls, tasks, check-ins and events

Revision ID: 21a1b2c3d4e5
Revises: 21b1c2d3e4f5
Create Date: 2026-12-14 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '21a1b2c3d4e5'
down_revision: str | None = '21b1c2d3e4f5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        'incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', _enum('incidentkind', 'flood', 'fire', 'epidemic', 'snow', 'power_cut', 'other'),
                  nullable=False),
        sa.Column('area', _enum('arealevel', 'grids', 'community', 'street'), nullable=False),
        sa.Column('street_id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=True),
        sa.Column('order_text', sa.Text(), nullable=False),
        sa.Column('declared_by_id', sa.Integer(), nullable=True),
        sa.Column('declared_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('closed_by_id', sa.Integer(), nullable=True),
        _fk('incidents', 'street_id', 'streets'),
        _fk('incidents', 'community_id', 'communities'),
        _fk('incidents', 'declared_by_id', 'people', 'SET NULL'),
        _fk('incidents', 'closed_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    )
    op.create_index(op.f('ix_incidents_street_id'), 'incidents', ['street_id'], unique=False)
    op.create_index(op.f('ix_incidents_declared_at'), 'incidents', ['declared_at'], unique=False)
    op.create_table(
        'incident_grids',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('roster_sent_at', sa.DateTime(), nullable=True),
        sa.Column('escalated_community_at', sa.DateTime(), nullable=True),
        sa.Column('escalated_street_at', sa.DateTime(), nullable=True),
        _fk('incident_grids', 'incident_id', 'incidents', 'CASCADE'),
        _fk('incident_grids', 'grid_id', 'grids'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_grids')),
        sa.UniqueConstraint('incident_id', 'grid_id', name=op.f('uq_incident_grids_incident_id')),
    )
    op.create_index(op.f('ix_incident_grids_grid_id'), 'incident_grids', ['grid_id'], unique=False)
    op.create_table(
        'incident_calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('called_at', sa.DateTime(), nullable=False),
        sa.Column('answer', _enum('answer', 'coming', 'late', 'cannot'), nullable=True),
        sa.Column('eta_at', sa.DateTime(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        _fk('incident_calls', 'incident_id', 'incidents', 'CASCADE'),
        _fk('incident_calls', 'person_id', 'people', 'CASCADE'),
        _fk('incident_calls', 'grid_id', 'grids'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_calls')),
        sa.UniqueConstraint('incident_id', 'person_id', name=op.f('uq_incident_calls_incident_id')),
    )
    op.create_index(op.f('ix_incident_calls_person_id'), 'incident_calls', ['person_id'], unique=False)
    op.create_index(op.f('ix_incident_calls_grid_id'), 'incident_calls', ['grid_id'], unique=False)
    op.create_table(
        'incident_tasks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('kind', _enum('taskkind', 'checkpoint', 'door_to_door', 'move_elderly', 'sandbags', 'other'),
                  nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('state', _enum('taskstate', 'open', 'taken', 'done'), nullable=False),
        sa.Column('posted_by_id', sa.Integer(), nullable=True),
        sa.Column('posted_at', sa.DateTime(), nullable=False),
        sa.Column('taken_by_id', sa.Integer(), nullable=True),
        sa.Column('taken_at', sa.DateTime(), nullable=True),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        _fk('incident_tasks', 'incident_id', 'incidents', 'CASCADE'),
        _fk('incident_tasks', 'grid_id', 'grids'),
        _fk('incident_tasks', 'posted_by_id', 'people', 'SET NULL'),
        _fk('incident_tasks', 'taken_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_tasks')),
    )
    op.create_index(op.f('ix_incident_tasks_incident_id'), 'incident_tasks', ['incident_id'], unique=False)
    op.create_table(
        'incident_checkins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=True),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('checked_in_at', sa.DateTime(), nullable=False),
        sa.Column('checked_out_at', sa.DateTime(), nullable=True),
        _fk('incident_checkins', 'incident_id', 'incidents', 'CASCADE'),
        _fk('incident_checkins', 'person_id', 'people', 'CASCADE'),
        _fk('incident_checkins', 'grid_id', 'grids'),
        _fk('incident_checkins', 'task_id', 'incident_tasks', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_checkins')),
    )
    op.create_index(op.f('ix_incident_checkins_incident_id'), 'incident_checkins', ['incident_id'], unique=False)
    op.create_table(
        'incident_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('grid_id', sa.Integer(), nullable=True),
        sa.Column('task_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        _fk('incident_events', 'incident_id', 'incidents', 'CASCADE'),
        _fk('incident_events', 'actor_id', 'people', 'SET NULL'),
        _fk('incident_events', 'grid_id', 'grids'),
        _fk('incident_events', 'task_id', 'incident_tasks', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_events')),
    )
    op.create_index(op.f('ix_incident_events_incident_id'), 'incident_events', ['incident_id'], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM role_grants WHERE role = 'commander'")
    for table in ('incident_events', 'incident_checkins', 'incident_tasks', 'incident_calls', 'incident_grids',
                  'incidents'):
        op.drop_table(table)
