"""Who a mobilisation calls, and who leads each grid's 作战单元.

Called, each once (the first reason found decides which grid's unit they count in): the members of
the area's grids' branches, the grids' leaders (branch secretaries and grid workers), the 在职党员
registered there by 双报到 (core/baodao: Role.dual_member in the grid), and the registered
volunteers of the area (a volunteer grant for one of its grids or branches, or any volunteer
grant of a person living in one of its buildings). Only people the bot can reach (a Telegram id)
are called. /notify off does not count: the call is essential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Branch, BranchMember, Building, Community, Grid, Person, Role, RoleGrant

CHUNK = 900  # ids per IN (...) list


@dataclass(frozen=True)
class Callee:
    person_id: int
    chat_id: int
    grid_id: int
    source: str  # member | leader | dual_member | volunteer


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def callees(session: Session, grid_ids: Iterable[int]) -> list[Callee]:
    """Everyone to call for these grids, by person id."""
    grids = sorted(set(grid_ids))
    found: dict[int, tuple[int, str]] = {}

    def add(query: Any, source: str) -> None:
        for person_id, grid_id in session.execute(query):
            if person_id is not None:
                found.setdefault(int(person_id), (int(grid_id), source))

    for part in _chunks(grids):
        add(select(BranchMember.person_id, Branch.grid_id).join(Branch, Branch.id == BranchMember.branch_id)
            .where(Branch.grid_id.in_(part)).order_by(Branch.grid_id, BranchMember.person_id), "member")
    for part in _chunks(grids):
        add(select(Branch.secretary_id, Branch.grid_id).where(Branch.grid_id.in_(part)).order_by(Branch.grid_id),
            "leader")
        add(select(RoleGrant.person_id, Branch.grid_id).join(Branch, Branch.id == RoleGrant.branch_id)
            .where(RoleGrant.role == Role.secretary, Branch.grid_id.in_(part)).order_by(RoleGrant.id), "leader")
        add(select(RoleGrant.person_id, RoleGrant.grid_id)
            .where(RoleGrant.role == Role.grid_worker, RoleGrant.grid_id.in_(part)).order_by(RoleGrant.id), "leader")
    for part in _chunks(grids):
        add(select(RoleGrant.person_id, RoleGrant.grid_id)
            .where(RoleGrant.role == Role.dual_member, RoleGrant.grid_id.in_(part)).order_by(RoleGrant.id),
            "dual_member")
    for part in _chunks(grids):
        add(select(RoleGrant.person_id, RoleGrant.grid_id)
            .where(RoleGrant.role == Role.volunteer, RoleGrant.grid_id.in_(part)).order_by(RoleGrant.id), "volunteer")
        add(select(RoleGrant.person_id, Branch.grid_id).join(Branch, Branch.id == RoleGrant.branch_id)
            .where(RoleGrant.role == Role.volunteer, Branch.grid_id.in_(part)).order_by(RoleGrant.id), "volunteer")
        add(select(RoleGrant.person_id, Building.grid_id).join(Person, Person.id == RoleGrant.person_id)
            .join(Building, Building.id == Person.building_id)
            .where(RoleGrant.role == Role.volunteer, Building.grid_id.in_(part)).order_by(RoleGrant.id), "volunteer")
    chats: dict[int, int] = {}
    for part in _chunks(sorted(found)):
        chats.update({int(pid): int(chat) for pid, chat in session.execute(
            select(Person.id, Person.telegram_id).where(Person.id.in_(part), Person.telegram_id.is_not(None)))})
    return [Callee(pid, chats[pid], grid, source) for pid, (grid, source) in sorted(found.items()) if pid in chats]


def leaders(session: Session, grid_id: int) -> list[Person]:
    """The grid's 作战单元 leaders: its branch's secretaries and its grid workers (reachable ones)."""
    ids: set[int] = set(session.scalars(select(RoleGrant.person_id).where(
        RoleGrant.role == Role.grid_worker, RoleGrant.grid_id == grid_id)))
    branch = session.scalar(select(Branch).where(Branch.grid_id == grid_id))
    if branch is not None:
        if branch.secretary_id is not None:
            ids.add(branch.secretary_id)
        ids |= set(session.scalars(select(RoleGrant.person_id).where(
            RoleGrant.role == Role.secretary, RoleGrant.branch_id == branch.id)))
    return list(session.scalars(select(Person).where(Person.id.in_(ids), Person.telegram_id.is_not(None))
                                .order_by(Person.id)))


def community_admins(session: Session, community_id: int) -> list[Person]:
    return list(session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
        RoleGrant.role == Role.community_admin, RoleGrant.community_id == community_id,
        Person.telegram_id.is_not(None)).order_by(Person.id)))


def street_admins(session: Session, street_id: int) -> list[Person]:
    return list(session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
        RoleGrant.role == Role.street_admin, RoleGrant.street_id == street_id,
        Person.telegram_id.is_not(None)).order_by(Person.id)))


def street_of_grid(session: Session, grid_id: int) -> int | None:
    return session.scalar(select(Community.street_id).join(Grid, Grid.community_id == Community.id)
                          .where(Grid.id == grid_id))
