"""duties: events, occurrences, attendance, shifts, scheduler jobs

Revision ID: 2ad5d92e14a6
Revises: 734329be3576
Create Date: 2026-11-22 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '2ad5d92e14a6'
down_revision: str | None = '734329be3576'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('general_meeting', 'committee', 'group_meeting', 'lecture', 'theme_day', 'study', name='eventkind', native_enum=False, length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('agenda', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=True),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('audience', sa.Enum('branch', 'party_group', 'people', name='audience', native_enum=False, length=16), nullable=False),
    sa.Column('party_group_id', sa.Integer(), nullable=True),
    sa.Column('mandatory', sa.Boolean(), nullable=False),
    sa.Column('reminder_offsets_minutes', sa.JSON(), nullable=False),
    sa.Column('checkin_before_minutes', sa.Integer(), nullable=False),
    sa.Column('checkin_after_minutes', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    *_timestamps(),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_events_branch_id_branches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['people.id'], name=op.f('fk_events_created_by_id_people'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['party_group_id'], ['party_groups.id'], name=op.f('fk_events_party_group_id_party_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_branch_id'), ['branch_id'], unique=False)

    op.create_table('event_invitees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_invitees_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_event_invitees_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_invitees')),
    sa.UniqueConstraint('event_id', 'person_id', name=op.f('uq_event_invitees_event_id'))
    )
    with op.batch_alter_table('event_invitees', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_invitees_person_id'), ['person_id'], unique=False)

    op.create_table('event_occurrences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('reminders_dirty', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_occurrences_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_occurrences')),
    sa.UniqueConstraint('event_id', 'starts_at', name=op.f('uq_event_occurrences_event_id'))
    )
    with op.batch_alter_table('event_occurrences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_occurrences_starts_at'), ['starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_occurrences_reminders_dirty'), ['reminders_dirty'], unique=False)

    op.create_table('attendances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('attending', 'leave', 'checked_in', name='attendancestatus', native_enum=False, length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['occurrence_id'], ['event_occurrences.id'], name=op.f('fk_attendances_occurrence_id_event_occurrences'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_attendances_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendances')),
    sa.UniqueConstraint('occurrence_id', 'person_id', name=op.f('uq_attendances_occurrence_id'))
    )
    with op.batch_alter_table('attendances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendances_person_id'), ['person_id'], unique=False)

    op.create_table('reminder_mutes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_reminder_mutes_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_reminder_mutes_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_mutes')),
    sa.UniqueConstraint('person_id', 'event_id', name=op.f('uq_reminder_mutes_person_id'))
    )
    with op.batch_alter_table('reminder_mutes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_mutes_event_id'), ['event_id'], unique=False)

    op.create_table('shifts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('cancel_cutoff_minutes', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    *_timestamps(),
    sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_shifts_branch_id_branches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_shifts_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['people.id'], name=op.f('fk_shifts_created_by_id_people'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shifts'))
    )
    with op.batch_alter_table('shifts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shifts_branch_id'), ['branch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shifts_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shifts_starts_at'), ['starts_at'], unique=False)

    op.create_table('shift_signups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shift_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('active', 'cancelled', 'swapped', name='signupstatus', native_enum=False, length=16), nullable=False),
    sa.Column('signed_up_at', sa.DateTime(), nullable=False),
    sa.Column('swap_requested_at', sa.DateTime(), nullable=True),
    sa.Column('swapped_to_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_shift_signups_person_id_people'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shift_id'], ['shifts.id'], name=op.f('fk_shift_signups_shift_id_shifts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['swapped_to_id'], ['people.id'], name=op.f('fk_shift_signups_swapped_to_id_people'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift_signups')),
    sa.UniqueConstraint('shift_id', 'person_id', name=op.f('uq_shift_signups_shift_id'))
    )
    with op.batch_alter_table('shift_signups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_signups_person_id'), ['person_id'], unique=False)

    # APScheduler 3's SQLAlchemyJobStore table (core.scheduler); same columns as the job
    # store declares, so it uses this table instead of creating its own.
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_apscheduler_jobs'))
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apscheduler_jobs_next_run_time'), ['next_run_time'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apscheduler_jobs_next_run_time'))

    op.drop_table('apscheduler_jobs')
    with op.batch_alter_table('shift_signups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_signups_person_id'))

    op.drop_table('shift_signups')
    with op.batch_alter_table('shifts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shifts_starts_at'))
        batch_op.drop_index(batch_op.f('ix_shifts_community_id'))
        batch_op.drop_index(batch_op.f('ix_shifts_branch_id'))

    op.drop_table('shifts')
    with op.batch_alter_table('reminder_mutes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_mutes_event_id'))

    op.drop_table('reminder_mutes')
    with op.batch_alter_table('attendances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attendances_person_id'))

    op.drop_table('attendances')
    with op.batch_alter_table('event_occurrences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_occurrences_reminders_dirty'))
        batch_op.drop_index(batch_op.f('ix_event_occurrences_starts_at'))

    op.drop_table('event_occurrences')
    with op.batch_alter_table('event_invitees', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_invitees_person_id'))

    op.drop_table('event_invitees')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_branch_id'))

    op.drop_table('events')
