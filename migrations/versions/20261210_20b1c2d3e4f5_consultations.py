"""议事: consultations, their votes and comments, residents' proposals, resident checks

Revision ID: 20b1c2d3e4f5
Revises: 19b1c2d3e4f5
Create Date: 2026-12-10 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '20b1c2d3e4f5'
down_revision: str | None = '19b1c2d3e4f5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'resident_checks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('building_id', sa.Integer(), nullable=False),
        sa.Column('checked_by_id', sa.Integer(), nullable=True),
        sa.Column('checked_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_resident_checks_person_id_people')),
        sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], ondelete='CASCADE',
                                name=op.f('fk_resident_checks_building_id_buildings')),
        sa.ForeignKeyConstraint(['checked_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_resident_checks_checked_by_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_resident_checks')),
        sa.UniqueConstraint('person_id', 'building_id', name=op.f('uq_resident_checks_person_id')),
    )
    op.create_index(op.f('ix_resident_checks_person_id'), 'resident_checks', ['person_id'])
    op.create_table(
        'consultations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('building_ids', sa.JSON(), nullable=True),
        sa.Column('scope_label', sa.String(length=200), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('options', sa.JSON(), nullable=False),
        sa.Column('live', sa.Boolean(), nullable=False),
        sa.Column('deadline', sa.DateTime(), nullable=False),
        sa.Column('opened_by_id', sa.Integer(), nullable=True),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('eligible', sa.Integer(), nullable=True),
        sa.Column('participants', sa.Integer(), nullable=True),
        sa.Column('minutes', sa.Text(), nullable=True),
        sa.Column('minutes_by_id', sa.Integer(), nullable=True),
        sa.Column('minutes_at', sa.DateTime(), nullable=True),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_consultations_grid_id_grids')),
        sa.ForeignKeyConstraint(['opened_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_consultations_opened_by_id_people')),
        sa.ForeignKeyConstraint(['minutes_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_consultations_minutes_by_id_people')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='SET NULL',
                                name=op.f('fk_consultations_ticket_id_tickets')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consultations')),
    )
    op.create_index(op.f('ix_consultations_grid_id'), 'consultations', ['grid_id'])
    op.create_index(op.f('ix_consultations_deadline'), 'consultations', ['deadline'])
    op.create_table(
        'consultation_votes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consultation_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('choice', sa.Integer(), nullable=False),
        sa.Column('voted_at', sa.DateTime(), nullable=False),
        sa.Column('changes', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], ondelete='CASCADE',
                                name=op.f('fk_consultation_votes_consultation_id_consultations')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_consultation_votes_person_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_votes')),
        sa.UniqueConstraint('consultation_id', 'person_id', name=op.f('uq_consultation_votes_consultation_id')),
    )
    op.create_index(op.f('ix_consultation_votes_consultation_id'), 'consultation_votes', ['consultation_id'])
    op.create_table(
        'consultation_comments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consultation_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('hidden_at', sa.DateTime(), nullable=True),
        sa.Column('hidden_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], ondelete='CASCADE',
                                name=op.f('fk_consultation_comments_consultation_id_consultations')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_consultation_comments_person_id_people')),
        sa.ForeignKeyConstraint(['hidden_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_consultation_comments_hidden_by_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_comments')),
    )
    op.create_index(op.f('ix_consultation_comments_consultation_id'), 'consultation_comments', ['consultation_id'])
    op.create_table(
        'proposals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('proposer_id', sa.Integer(), nullable=False),
        sa.Column('topic', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('agenda_at', sa.DateTime(), nullable=True),
        sa.Column('answer_due', sa.DateTime(), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('answered_by_id', sa.Integer(), nullable=True),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('overdue_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_proposals_grid_id_grids')),
        sa.ForeignKeyConstraint(['proposer_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_proposals_proposer_id_people')),
        sa.ForeignKeyConstraint(['answered_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_proposals_answered_by_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_proposals')),
    )
    op.create_index(op.f('ix_proposals_grid_id'), 'proposals', ['grid_id'])
    op.create_index(op.f('ix_proposals_answer_due'), 'proposals', ['answer_due'])
    op.create_table(
        'proposal_supports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('proposal_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], ondelete='CASCADE',
                                name=op.f('fk_proposal_supports_proposal_id_proposals')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_proposal_supports_person_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_proposal_supports')),
        sa.UniqueConstraint('proposal_id', 'person_id', name=op.f('uq_proposal_supports_proposal_id')),
    )
    op.create_index(op.f('ix_proposal_supports_proposal_id'), 'proposal_supports', ['proposal_id'])


def downgrade() -> None:
    for table in ('proposal_supports', 'proposals', 'consultation_comments', 'consultation_votes',
                  'consultations', 'resident_checks'):
        op.drop_table(table)
