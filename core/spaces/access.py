"""Who may book a space, in which capacity, and who manages it.

A space lists who may book it (the registry's `bookers`), and each maps to a permission-table
action held where the booking speaks for:
- party_org (党组织): a member or secretary of a branch in the space's community, on behalf of
  the branch (`space.book_party` at the branch), or a community admin for the community's 党委
  (`space.book_party` at the community);
- enterprise (单位): a 双报到 liaison — an approved /baodao in the community — for their work
  unit (`space.book_unit` at the registration's grid; core.lists.entries.liaison_of answers who);
- resident (居民): someone bound to a building of the community (`space.book` at that grid).
A person who could book in several capacities books in the first of party_org, enterprise,
resident that the space allows. Managers: the registry's list for the space, and the admins of
its community (`space.manage`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import (
    PERMISSIONS,
    NotAllowed,
    allowed,
    roles_at,
    scope_of_branch,
    scope_of_community,
    scope_of_grid,
)
from core.lists.entries import liaison_of
from core.messages import t
from core.models import (
    BaodaoRegistration,
    Branch,
    BranchMember,
    Building,
    Community,
    Grid,
    PartyOrganisation,
    Person,
    Role,
    RoleGrant,
    Space,
    SpaceManager,
)

PARTY, ENTERPRISE, RESIDENT = "party_org", "enterprise", "resident"
BOOKERS = (PARTY, ENTERPRISE, RESIDENT)  # the order capacities are tried in
SHOWN = 12  # spaces /yuyue offers


@dataclass(frozen=True)
class Capacity:
    kind: str  # one of BOOKERS
    organisation: str | None  # the branch, 党委 or unit booked for; None for a resident


def home_grid(session: Session, person: Person | None) -> Grid | None:
    building = session.get(Building, person.building_id) if person and person.building_id else None
    return session.get(Grid, building.grid_id) if building is not None else None


def _branches(session: Session, community_id: int) -> list[Branch]:
    return list(session.scalars(select(Branch).join(Grid, Grid.id == Branch.grid_id)
                                .where(Grid.community_id == community_id).order_by(Branch.code)))


def _committee(session: Session, community_id: int) -> str:
    name = session.scalar(select(PartyOrganisation.name).where(
        PartyOrganisation.community_id == community_id, PartyOrganisation.kind == "committee"))
    community = session.get(Community, community_id)
    return name or t("spaces.committee_of", community=community.name if community else "")


def capacities(session: Session, person: Person | None, space: Space) -> list[Capacity]:
    """Every capacity in which `person` may book `space`, in the order of BOOKERS."""
    if person is None:
        return []
    found: list[Capacity] = []
    if PARTY in space.bookers:
        own = {Role.member, Role.secretary} & PERMISSIONS["space.book_party"]
        branch = next((b for b in _branches(session, space.community_id)
                       if roles_at(session, person, scope_of_branch(session, b)) & own), None)
        if branch is not None:
            found.append(Capacity(PARTY, branch.name))
        elif allowed(session, person, "space.book_party", scope_of_community(space.community_id)):
            found.append(Capacity(PARTY, _committee(session, space.community_id)))
    if ENTERPRISE in space.bookers:
        registration = liaison_of(session, person)
        if registration is not None and registration.community_id == space.community_id and \
                allowed(session, person, "space.book_unit", scope_of_grid(session, registration.grid_id)):
            found.append(Capacity(ENTERPRISE, registration.work_unit))
    if RESIDENT in space.bookers:
        grid = home_grid(session, person)
        if grid is not None and grid.community_id == space.community_id and \
                allowed(session, person, "space.book", scope_of_grid(session, grid.id)):
            found.append(Capacity(RESIDENT, None))
    return found


def who_may(space: Space) -> str:
    """党组织、单位、居民: who the space is for, in words."""
    return "、".join(t(f"spaces.booker.{kind}") for kind in BOOKERS if kind in space.bookers)


def capacity_for(session: Session, person: Person | None, space: Space) -> Capacity:
    """The capacity `person` books `space` in; NotAllowed with the reason when they may not."""
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    found = capacities(session, person, space)
    if found:
        return found[0]
    if RESIDENT in space.bookers and home_grid(session, person) is None and not person.grants:
        raise NotAllowed(t("spaces.deny.no_home"))
    raise NotAllowed(t("spaces.deny.who", space=space.name, who=who_may(space)))


def is_manager(session: Session, person: Person | None, space: Space) -> bool:
    if person is None:
        return False
    listed = session.scalar(select(SpaceManager.id).where(SpaceManager.space_id == space.id,
                                                          SpaceManager.person_id == person.id))
    return listed is not None or allowed(session, person, "space.manage", scope_of_community(space.community_id))


def require_manager(session: Session, person: Person | None, space: Space) -> Person:
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    if not is_manager(session, person, space):
        raise NotAllowed(t("spaces.deny.not_manager", space=space.name))
    return person


def managers(session: Session, space: Space) -> list[Person]:
    """Who is asked to approve (with a chat): the listed managers, or else the community's admins."""
    listed = list(session.scalars(select(Person).join(SpaceManager, SpaceManager.person_id == Person.id)
                                  .where(SpaceManager.space_id == space.id, Person.telegram_id.is_not(None))
                                  .order_by(Person.id)))
    if listed:
        return listed
    admins = session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
        RoleGrant.role == Role.community_admin, RoleGrant.community_id == space.community_id,
        Person.telegram_id.is_not(None)).order_by(Person.id))
    return list(dict.fromkeys(admins))


def managed(session: Session, person: Person | None) -> list[Space]:
    """The spaces `person` manages."""
    if person is None:
        return []
    return [s for s in session.scalars(select(Space).order_by(Space.code)) if is_manager(session, person, s)]


def communities_of(session: Session, person: Person | None) -> set[int]:
    """The communities a person belongs to: home, branches, 双报到, administration, managed spaces."""
    if person is None:
        return set()
    ids: set[int] = set()
    grid = home_grid(session, person)
    if grid is not None:
        ids.add(grid.community_id)
    ids |= set(session.scalars(select(Grid.community_id).join(Branch, Branch.grid_id == Grid.id)
                               .join(BranchMember, BranchMember.branch_id == Branch.id)
                               .where(BranchMember.person_id == person.id)))
    ids |= set(session.scalars(select(Grid.community_id).join(Branch, Branch.grid_id == Grid.id)
                               .where(Branch.secretary_id == person.id)))
    ids |= set(session.scalars(select(BaodaoRegistration.community_id).where(
        BaodaoRegistration.person_id == person.id)))
    ids |= {g.community_id for g in person.grants if g.community_id is not None}
    grid_ids = sorted({g.grid_id for g in person.grants if g.grid_id is not None})
    if grid_ids:
        ids |= set(session.scalars(select(Grid.community_id).where(Grid.id.in_(grid_ids))))
    ids |= set(session.scalars(select(Space.community_id).join(SpaceManager, SpaceManager.space_id == Space.id)
                               .where(SpaceManager.person_id == person.id)))
    return ids


def spaces_for(session: Session, person: Person | None) -> list[Space]:
    """What /yuyue offers: the spaces of the person's communities; someone who belongs nowhere yet
    (a new user) sees every space, and is told how to book when they pick one."""
    ids = communities_of(session, person)
    query = select(Space).order_by(Space.community_id, Space.id)  # the registry's order
    if ids:
        query = query.where(Space.community_id.in_(sorted(ids)))
    return list(session.scalars(query.limit(SHOWN)))
