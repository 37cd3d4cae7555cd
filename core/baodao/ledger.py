"""The 双报到 ledger communities report upwards: per grid and per community, the registered
在职党员 and their service hours in a period.

Hours: a volunteer shift counts its length when the member's sign-up was still active (not
cancelled or handed over) and the shift was not cancelled and ended in the period; a ticket the
member claimed counts TICKET_HOURS when it was resolved in the period (a fixed credit: the time
between 领单 and 办结 is not time worked).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.baodao.registration import registered
from core.models import (
    Community,
    Grid,
    Shift,
    ShiftSignup,
    SignupStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
)

TICKET_HOURS = 1.0


@dataclass
class Ledger:
    code: str
    name: str
    members: int = 0
    shift_hours: float = 0.0
    tickets: int = 0
    people: set[int] = field(default_factory=set)

    @property
    def hours(self) -> float:
        return round(self.shift_hours + self.tickets * TICKET_HOURS, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "members": self.members,
                "shift_hours": round(self.shift_hours, 1), "tickets_resolved": self.tickets, "hours": self.hours}


def ledger(session: Session, start: datetime, end: datetime,
           community_id: int | None = None) -> tuple[list[Ledger], list[Ledger]]:
    """(per grid, per community), each sorted by code; members registered before `end`."""
    grids = {g.id: g for g in session.scalars(select(Grid))
             if community_id is None or g.community_id == community_id}
    communities = {c.id: c for c in session.scalars(select(Community)) if c.id in {g.community_id for g in grids.values()}}
    per_grid = {gid: Ledger(g.code, g.name) for gid, g in grids.items()}
    per_community = {cid: Ledger(c.code, c.name) for cid, c in communities.items()}
    grid_of: dict[int, int] = {}
    for row in registered(session, grid_ids=list(grids), at=end):
        grid_of[row.person_id] = row.grid_id
        per_grid[row.grid_id].members += 1
        per_community[grids[row.grid_id].community_id].members += 1
    if not grid_of:
        return _sorted(per_grid), _sorted(per_community)
    hours: dict[int, float] = defaultdict(float)
    for signup_person, starts, ends in session.execute(
            select(ShiftSignup.person_id, Shift.starts_at, Shift.ends_at).join(Shift, Shift.id == ShiftSignup.shift_id)
            .where(ShiftSignup.person_id.in_(grid_of), ShiftSignup.status == SignupStatus.active,
                   Shift.cancelled.is_(False), Shift.ends_at >= start, Shift.ends_at < end)):
        hours[signup_person] += max(0.0, (ends - starts).total_seconds() / 3600)
    resolved = select(TicketEvent.ticket_id).where(TicketEvent.to_status == TicketStatus.resolved,
                                                   TicketEvent.at >= start, TicketEvent.at < end)
    tickets: dict[int, int] = defaultdict(int)
    for claimer in session.scalars(select(Ticket.claimed_by_id).where(Ticket.claimed_by_id.in_(grid_of),
                                                                       Ticket.id.in_(resolved))):
        if claimer is not None:
            tickets[claimer] += 1
    for person_id, grid_id in grid_of.items():
        for entry in (per_grid[grid_id], per_community[grids[grid_id].community_id]):
            entry.shift_hours += hours.get(person_id, 0.0)
            entry.tickets += tickets.get(person_id, 0)
    return _sorted(per_grid), _sorted(per_community)


def _sorted(entries: dict[int, Ledger]) -> list[Ledger]:
    return sorted(entries.values(), key=lambda e: e.code)
