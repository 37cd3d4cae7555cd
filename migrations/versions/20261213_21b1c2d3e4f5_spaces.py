"""共享空间: spaces, space_managers, space_bookings; events.space_id and shifts.space_id

Revision ID: 21b1c2d3e4f5
Revises: 20c2d3e4f5a6
Create Date: 2026-12-13 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '21b1c2d3e4f5'
down_revision: str | None = '20c2d3e4f5a6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('pending', 'confirmed')")


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    op.create_table(
        'spaces',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=False),
        sa.Column('hours', sa.JSON(), nullable=False),
        sa.Column('equipment', sa.JSON(), nullable=False),
        sa.Column('needs_approval', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('bookers', sa.JSON(), nullable=False),
        sa.Column('slot_minutes', sa.Integer(), nullable=False),
        sa.Column('address', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), server_default=sa.func.current_timestamp(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.func.current_timestamp(), nullable=False),
        _fk('spaces', 'community_id', 'communities'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_spaces')),
        sa.UniqueConstraint('code', name=op.f('uq_spaces_code')),
    )
    op.create_index(op.f('ix_spaces_community_id'), 'spaces', ['community_id'], unique=False)
    op.create_table(
        'space_managers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('space_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        _fk('space_managers', 'space_id', 'spaces', 'CASCADE'),
        _fk('space_managers', 'person_id', 'people', 'CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_space_managers')),
        sa.UniqueConstraint('space_id', 'person_id', name=op.f('uq_space_managers_space_id')),
    )
    op.create_index(op.f('ix_space_managers_person_id'), 'space_managers', ['person_id'], unique=False)
    op.create_table(
        'space_bookings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('space_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('booked_as', sa.String(length=16), nullable=False),
        sa.Column('organisation', sa.String(length=200), nullable=True),
        sa.Column('starts_at', sa.DateTime(), nullable=False),
        sa.Column('ends_at', sa.DateTime(), nullable=False),
        sa.Column('purpose', sa.String(length=200), nullable=False),
        sa.Column('people', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'confirmed', 'refused', 'cancelled', 'no_show', 'done',
                                    name='bookingstatus', native_enum=False, length=16), nullable=False),
        sa.Column('source', sa.Enum('chat', 'centre', 'duty', name='bookingsource', native_enum=False,
                                    length=16), nullable=False),
        sa.Column('occurrence_id', sa.Integer(), nullable=True),
        sa.Column('shift_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('cancelled_at', sa.DateTime(), nullable=True),
        sa.Column('no_show_at', sa.DateTime(), nullable=True),
        sa.Column('reminded', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('space_bookings', 'space_id', 'spaces'),
        _fk('space_bookings', 'person_id', 'people', 'SET NULL'),
        _fk('space_bookings', 'occurrence_id', 'event_occurrences', 'SET NULL'),
        _fk('space_bookings', 'shift_id', 'shifts', 'SET NULL'),
        _fk('space_bookings', 'decided_by_id', 'people', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_space_bookings')),
    )
    for column in ('space_id', 'person_id', 'starts_at', 'status', 'occurrence_id', 'shift_id'):
        op.create_index(op.f(f'ix_space_bookings_{column}'), 'space_bookings', [column], unique=False)
    # the same start twice in one space (the row lock in core.spaces.booking keeps out every overlap)
    op.create_index('uq_space_bookings_active_start', 'space_bookings', ['space_id', 'starts_at'], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    for table in ('events', 'shifts'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('space_id', sa.Integer(), nullable=True))
            batch.create_foreign_key(f'fk_{table}_space_id_spaces', 'spaces', ['space_id'], ['id'],
                                     ondelete='SET NULL')


def downgrade() -> None:
    for table in ('shifts', 'events'):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f'fk_{table}_space_id_spaces', type_='foreignkey')
            batch.drop_column('space_id')
    op.drop_table('space_bookings')
    op.drop_table('space_managers')
    op.drop_table('spaces')
