"""The community's places and branches as the registry lists them: for pickers and labels."""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Branch, Building, Community, Grid


def communities(session: Session) -> list[tuple[str, str]]:
    """(code, name) of every community, by code."""
    return [(c.code, c.name) for c in session.scalars(select(Community).order_by(Community.code))]


def buildings_of(session: Session, community_code: str) -> list[tuple[str, str]]:
    """(code, address) of the community's buildings, by code."""
    rows = session.execute(select(Building.code, Building.address).join(Grid).join(Community)
                           .where(Community.code == community_code).order_by(Building.code))
    return [(code, address) for code, address in rows]


def nearest_buildings(session: Session, grid_codes: list[str], lat: float, lon: float,
                      n: int = 3) -> list[tuple[str, str]]:
    """(code, address) of the `n` buildings of these grids nearest to the point."""
    rows = session.execute(select(Building.code, Building.address, Building.lat, Building.lon).join(Grid)
                           .where(Grid.code.in_(grid_codes), Building.lat.is_not(None)))
    ranked = sorted(rows, key=lambda r: math.hypot(r.lat - lat, (r.lon - lon) * math.cos(math.radians(lat))))
    return [(r.code, r.address) for r in ranked[:n]]


def building(session: Session, code: str) -> Building:
    """The building with this registry code (NoResultFound when there is none)."""
    return session.scalars(select(Building).where(Building.code == code)).one()


def branch_by_chat(session: Session, chat_id: int) -> Branch | None:
    """The branch whose group this chat is."""
    return session.scalar(select(Branch).where(Branch.telegram_chat_id == chat_id))


def branch(session: Session, branch_id: int) -> Branch:
    """The branch with this id (LookupError when there is none)."""
    found = session.get(Branch, branch_id)
    if found is None:
        raise LookupError(f"no branch {branch_id}")
    return found
