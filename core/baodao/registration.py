"""/baodao: a party member whose organisation is elsewhere registers with the community they
live in, and the grid's secretary or a community admin approves or declines with a reason.

Approval grants Role.dual_member (在职党员) in the home building's grid and its branch: not the
branch's `member` grant, so the member is not in 三会一课 attendance, and `gridbot import` never
replaces it (the importer only rewrites the roles a file lists). Every submission and decision is
an audit entry. Refusals are NotAllowed with a Chinese reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, require, scope_of_grid
from core.messages import t
from core.models import (
    BaodaoRegistration,
    Branch,
    BranchMember,
    Building,
    Grid,
    PartyOrganisation,
    Person,
    RegistrationStatus,
    Role,
    RoleGrant,
    WorkUnit,
    utcnow,
)

RS = RegistrationStatus
# Skills, then availability: the buttons of the last step (any mix).
SKILLS = ("医疗", "法律", "维修", "教育", "心理", "驾驶", "文艺", "电脑")
AVAILABILITY = ("工作日晚上", "周末", "随叫随到")
TAGS = SKILLS + AVAILABILITY
NAME_LIMIT = 60  # characters of a typed organisation or unit
OFFERED = 6  # registry organisations / units offered as buttons


def home(session: Session, person: Person | None) -> Building:
    """The building the registration is for: the person's binding (/start). NotAllowed without one."""
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    building = session.get(Building, person.building_id) if person.building_id is not None else None
    if building is None:
        raise NotAllowed(t("baodao.deny.no_home"))
    return building


def branch_of_grid(session: Session, grid_id: int) -> Branch | None:
    return session.scalar(select(Branch).where(Branch.grid_id == grid_id))


def check_can_register(session: Session, person: Person | None) -> Building:
    """The home building if `person` may start /baodao now; NotAllowed with the reason if not."""
    building = home(session, person)
    assert person is not None
    require(session, person, "baodao.register", scope_of_grid(session, building.grid_id))
    open_row = session.scalar(select(BaodaoRegistration).where(
        BaodaoRegistration.person_id == person.id, BaodaoRegistration.status.in_((RS.pending, RS.approved))))
    if open_row is not None:
        raise NotAllowed(t("baodao.deny.pending" if open_row.status is RS.pending else "baodao.deny.already"))
    branch = branch_of_grid(session, building.grid_id)
    if branch is not None and session.scalar(select(BranchMember.id).where(
            BranchMember.branch_id == branch.id, BranchMember.person_id == person.id)) is not None:
        raise NotAllowed(t("baodao.deny.branch_member", branch=branch.name))
    return building


def known_organisations(session: Session, community_id: int) -> list[PartyOrganisation]:
    """The registry's organisations to offer first: units' organisations, then the community's."""
    rows = session.scalars(select(PartyOrganisation).order_by(PartyOrganisation.code))
    ranked = sorted(rows, key=lambda o: (o.kind != "unit", o.community_id != community_id, o.code))
    return ranked[:OFFERED]


def known_units(session: Session, community_id: int) -> list[WorkUnit]:
    rows = session.scalars(select(WorkUnit).order_by(WorkUnit.code))
    return sorted(rows, key=lambda u: (u.community_id != community_id, u.code))[:OFFERED]


def clean_name(text: str) -> str:
    """A typed organisation or unit name; NotAllowed when empty or too long."""
    text = " ".join(text.split())
    if not text:
        raise NotAllowed(t("baodao.deny.empty"))
    if len(text) > NAME_LIMIT:
        raise NotAllowed(t("baodao.deny.too_long", limit=NAME_LIMIT))
    return text


def submit(session: Session, person: Person | None, *, organisation: str, work_unit: str,
           tags: list[str], now: datetime | None = None) -> BaodaoRegistration:
    """File a registration (pending). The organisation and unit link to the registry's when
    their names match one exactly."""
    building = check_can_register(session, person)
    assert person is not None
    organisation, work_unit = clean_name(organisation), clean_name(work_unit)
    unknown = [tag for tag in tags if tag not in TAGS]
    if unknown:
        raise NotAllowed(t("baodao.deny.tag", tag=unknown[0]))
    grid = session.get(Grid, building.grid_id)
    assert grid is not None
    row = BaodaoRegistration(
        person_id=person.id, community_id=grid.community_id, grid_id=grid.id, building_id=building.id,
        organisation=organisation, work_unit=work_unit, tags=[tag for tag in TAGS if tag in tags],
        organisation_id=session.scalar(select(PartyOrganisation.id).where(PartyOrganisation.name == organisation)),
        work_unit_id=session.scalar(select(WorkUnit.id).where(WorkUnit.name == work_unit)),
        created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.record(session, person, "baodao.submit", f"baodao:{row.id}", {"grid": grid.code}, at=now)
    return row


def deciders(session: Session, row: BaodaoRegistration) -> list[Person]:
    """Who is asked to decide: the grid branch's secretaries and the community's admins."""
    branch = branch_of_grid(session, row.grid_id)
    ids: set[int] = set()
    if branch is not None:
        if branch.secretary_id is not None:
            ids.add(branch.secretary_id)
        ids |= set(session.scalars(select(RoleGrant.person_id).where(
            RoleGrant.role == Role.secretary, RoleGrant.branch_id == branch.id)))
    ids |= set(session.scalars(select(RoleGrant.person_id).where(
        RoleGrant.role == Role.community_admin, RoleGrant.community_id == row.community_id)))
    return list(session.scalars(select(Person).where(Person.id.in_(ids), Person.telegram_id.is_not(None))
                                .order_by(Person.id)))


def organisation_named(session: Session, organisation_id: int) -> str:
    row = session.get(PartyOrganisation, organisation_id)
    if row is None:
        raise NotAllowed(t("button_invalid"))
    return row.name


def unit_named(session: Session, unit_id: int) -> str:
    row = session.get(WorkUnit, unit_id)
    if row is None:
        raise NotAllowed(t("button_invalid"))
    return row.name


def check_decider(session: Session, actor: Person | None, row: BaodaoRegistration | None) -> Person:
    """`actor` if they may decide `row` now (baodao.decide in its grid, still pending)."""
    if row is None:
        raise NotAllowed(t("baodao.deny.gone"))
    actor = require(session, actor, "baodao.decide", scope_of_grid(session, row.grid_id))
    if row.status is not RS.pending:
        raise NotAllowed(t("baodao.deny.decided", status=t(f"baodao.status.{row.status.value}")))
    return actor


def decide(session: Session, actor: Person | None, registration_id: int, *, approve: bool,
           reason: str = "", now: datetime | None = None) -> BaodaoRegistration:
    """Approve (grants 在职党员 in the grid) or decline (a reason is required)."""
    row = session.get(BaodaoRegistration, registration_id, with_for_update=True)
    actor = check_decider(session, actor, row)
    assert row is not None
    reason = " ".join(reason.split())
    if not approve and not reason:
        raise NotAllowed(t("baodao.deny.no_reason"))
    now = now or utcnow()
    row.status = RS.approved if approve else RS.declined
    row.decided_at, row.decided_by_id, row.reason = now, actor.id, reason or None
    if approve:
        branch = branch_of_grid(session, row.grid_id)
        session.add(RoleGrant(person_id=row.person_id, role=Role.dual_member, community_id=row.community_id,
                              grid_id=row.grid_id, branch_id=branch.id if branch is not None else None))
    session.flush()
    audit.record(session, actor, "baodao.approve" if approve else "baodao.decline", f"baodao:{row.id}",
                 {"person": row.person_id, "grid": row.grid_id}, at=now)
    return row


def summary(session: Session, row: BaodaoRegistration) -> str:
    """The registration as the deciders and the member read it."""
    person = session.get(Person, row.person_id)
    building = session.get(Building, row.building_id)
    return t("baodao.summary", name=person.display_name if person else "",
             home=building.address if building else "", organisation=row.organisation,
             unit=row.work_unit, tags="、".join(row.tags) or t("baodao.no_tags"))


def registered(session: Session, *, grid_ids: list[int] | None = None,
               at: datetime | None = None) -> list[BaodaoRegistration]:
    """Approved registrations (decided before `at`), optionally of some grids only."""
    query = select(BaodaoRegistration).where(BaodaoRegistration.status == RS.approved)
    if grid_ids is not None:
        query = query.where(BaodaoRegistration.grid_id.in_(grid_ids))
    if at is not None:
        query = query.where(BaodaoRegistration.decided_at < at)
    return list(session.scalars(query.order_by(BaodaoRegistration.id)))
