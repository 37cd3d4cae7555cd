"""双报到 and party-org navigation: party_organisations, service_centres, work_units,
baodao_registrations

Revision ID: 20a0b1c2d3e4
Revises: 20b1c2d3e4f5
Create Date: 2026-12-11 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '20a0b1c2d3e4'
down_revision: str | None = '20b1c2d3e4f5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _place_columns() -> list[sa.Column]:
    return [sa.Column('address', sa.Text(), nullable=True),
            sa.Column('lat', sa.Float(), nullable=True),
            sa.Column('lon', sa.Float(), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        'work_units',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=True),
        *_place_columns(),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_work_units_community_id_communities')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_work_units')),
        sa.UniqueConstraint('code', name=op.f('uq_work_units_code')),
    )
    op.create_table(
        'party_organisations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=True),
        sa.Column('branch_id', sa.Integer(), nullable=True),
        sa.Column('unit_id', sa.Integer(), nullable=True),
        sa.Column('hours', sa.String(length=200), nullable=True),
        sa.Column('phone', sa.String(length=64), nullable=True),
        *_place_columns(),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                                name=op.f('fk_party_organisations_community_id_communities')),
        sa.ForeignKeyConstraint(['branch_id'], ['branches.id'], name=op.f('fk_party_organisations_branch_id_branches')),
        sa.ForeignKeyConstraint(['unit_id'], ['work_units.id'], name=op.f('fk_party_organisations_unit_id_work_units')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_party_organisations')),
        sa.UniqueConstraint('code', name=op.f('uq_party_organisations_code')),
    )
    op.create_table(
        'service_centres',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=True),
        sa.Column('hours', sa.String(length=200), nullable=True),
        sa.Column('phone', sa.String(length=64), nullable=True),
        *_place_columns(),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                                name=op.f('fk_service_centres_community_id_communities')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_centres')),
        sa.UniqueConstraint('code', name=op.f('uq_service_centres_code')),
    )
    op.create_table(
        'baodao_registrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('building_id', sa.Integer(), nullable=False),
        sa.Column('organisation', sa.String(length=200), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=True),
        sa.Column('work_unit', sa.String(length=200), nullable=False),
        sa.Column('work_unit_id', sa.Integer(), nullable=True),
        sa.Column('tags', sa.JSON(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'approved', 'declined', name='registrationstatus',
                                    native_enum=False, length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE',
                                name=op.f('fk_baodao_registrations_person_id_people')),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                                name=op.f('fk_baodao_registrations_community_id_communities')),
        sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_baodao_registrations_grid_id_grids')),
        sa.ForeignKeyConstraint(['building_id'], ['buildings.id'],
                                name=op.f('fk_baodao_registrations_building_id_buildings')),
        sa.ForeignKeyConstraint(['organisation_id'], ['party_organisations.id'],
                                name=op.f('fk_baodao_registrations_organisation_id_party_organisations')),
        sa.ForeignKeyConstraint(['work_unit_id'], ['work_units.id'],
                                name=op.f('fk_baodao_registrations_work_unit_id_work_units')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['people.id'], ondelete='SET NULL',
                                name=op.f('fk_baodao_registrations_decided_by_id_people')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_baodao_registrations')),
    )
    for column in ('person_id', 'community_id', 'grid_id', 'status'):
        op.create_index(op.f(f'ix_baodao_registrations_{column}'), 'baodao_registrations', [column], unique=False)


def downgrade() -> None:
    for column in ('person_id', 'community_id', 'grid_id', 'status'):
        op.drop_index(op.f(f'ix_baodao_registrations_{column}'), table_name='baodao_registrations')
    op.drop_table('baodao_registrations')
    op.drop_table('service_centres')
    op.drop_table('party_organisations')
    op.drop_table('work_units')
