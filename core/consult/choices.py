"""What a secretary picks from when opening a consultation: their grids, then the whole grid, a
party group (Chengdu's 一党小组一基本单元: the group's buildings) or one building."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, allowed, scope_of_grid
from core.messages import t
from core.models import Branch, Building, Grid, PartyGroup, Person

GRID, GROUP, BUILDING = "grid", "group", "building"


def grids_for(session: Session, actor: Person | None) -> list[Grid]:
    if actor is None:
        return []
    return [g for g in session.scalars(select(Grid).order_by(Grid.code))
            if allowed(session, actor, "consult.open", scope_of_grid(session, g.id))]


def scopes(session: Session, grid_id: int) -> list[tuple[str, int, str]]:
    """(kind, id, label) for the grid, its party groups that own buildings, and its buildings."""
    grid = session.get(Grid, grid_id)
    if grid is None:
        return []
    out = [(GRID, grid.id, t("consult.scope_grid", grid=grid.name))]
    branch = session.scalar(select(Branch).where(Branch.grid_id == grid_id))
    if branch is not None:
        out += [(GROUP, g.id, t("consult.scope_group", group=g.name))
                for g in sorted(branch.groups, key=lambda g: g.code) if g.building_codes]
    out += [(BUILDING, b.id, b.address) for b in session.scalars(
        select(Building).where(Building.grid_id == grid_id).order_by(Building.code))]
    return out


def resolve(session: Session, kind: str, ref: int) -> tuple[int, list[int] | None, str]:
    """(grid id, building ids or None for the whole grid, label) of a picked scope."""
    if kind == GRID:
        grid = session.get(Grid, ref)
        if grid is not None:
            return grid.id, None, t("consult.scope_grid", grid=grid.name)
    elif kind == GROUP:
        group = session.get(PartyGroup, ref)
        if group is not None:
            ids = list(session.scalars(select(Building.id).where(Building.code.in_(group.building_codes))))
            if ids:
                return group.branch.grid_id, ids, t("consult.scope_group", group=group.name)
    elif kind == BUILDING:
        building = session.get(Building, ref)
        if building is not None:
            return building.grid_id, [building.id], building.address
    raise NotAllowed(t("consult.unknown"))
