"""ticket_deadlines: the steps of each ticket's time limits; tickets.overdue_at, first limits, deadline_round, deadlines_pending

Revision ID: e1f2a3b4c5d6
Revises: d0e1f2a3b4c5
Create Date: 2026-12-07 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e1f2a3b4c5d6'
down_revision: str | None = 'd0e1f2a3b4c5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEPS = ('respond_first', 'respond_second', 'respond_overdue', 'resolve_first', 'resolve_second',
         'resolve_overdue', 'emergency_recall')


def upgrade() -> None:
    op.add_column('tickets', sa.Column('overdue_at', sa.DateTime(), nullable=True))
    op.add_column('tickets', sa.Column('first_respond_due_at', sa.DateTime(), nullable=True))
    op.add_column('tickets', sa.Column('first_resolve_due_at', sa.DateTime(), nullable=True))
    op.create_index('ix_tickets_first_respond_due_at', 'tickets', ['first_respond_due_at'])
    op.create_index('ix_tickets_first_resolve_due_at', 'tickets', ['first_resolve_due_at'])
    op.execute("UPDATE tickets SET first_respond_due_at = respond_due_at, first_resolve_due_at = resolve_due_at")
    # the rates read a period's tickets and events by time
    op.create_index('ix_tickets_created_at', 'tickets', ['created_at'])
    op.create_index('ix_ticket_events_at', 'ticket_events', ['at'])
    op.create_index('ix_outbox_chat_kind', 'outbox', ['chat_id', 'kind'])  # a group's last digest
    op.add_column('tickets', sa.Column('deadline_round', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('tickets', sa.Column('deadlines_pending', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index('ix_tickets_deadlines_pending', 'tickets', ['deadlines_pending'])
    # Open tickets filed before this revision are planned too (a limit already past acts at once).
    op.execute("UPDATE tickets SET deadlines_pending = TRUE WHERE status IN "
               "('new', 'accepted', 'claimed', 'escalated', 'reopened')")
    op.create_table(
        'ticket_deadlines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.Enum(*STEPS, name='deadlinestep', native_enum=False, length=24), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('digest_pending', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('ticket_id', 'step', 'round'),
    )
    op.create_index('ix_ticket_deadlines_ticket_id', 'ticket_deadlines', ['ticket_id'])
    op.create_index('ix_ticket_deadlines_open', 'ticket_deadlines', ['done_at', 'due_at'])
    op.create_index('ix_ticket_deadlines_digest_pending', 'ticket_deadlines', ['digest_pending'])


def downgrade() -> None:
    op.drop_index('ix_ticket_deadlines_digest_pending', table_name='ticket_deadlines')
    op.drop_index('ix_ticket_deadlines_open', table_name='ticket_deadlines')
    op.drop_index('ix_ticket_deadlines_ticket_id', table_name='ticket_deadlines')
    op.drop_table('ticket_deadlines')
    op.drop_index('ix_tickets_deadlines_pending', table_name='tickets')
    op.drop_index('ix_outbox_chat_kind', table_name='outbox')
    op.drop_index('ix_ticket_events_at', table_name='ticket_events')
    op.drop_index('ix_tickets_created_at', table_name='tickets')
    op.drop_index('ix_tickets_first_resolve_due_at', table_name='tickets')
    op.drop_index('ix_tickets_first_respond_due_at', table_name='tickets')
    with op.batch_alter_table('tickets', recreate='never') as batch:
        batch.drop_column('first_resolve_due_at')
        batch.drop_column('first_respond_due_at')
        batch.drop_column('deadlines_pending')
        batch.drop_column('deadline_round')
        batch.drop_column('overdue_at')
