"""What one person sees in the command centre: the grids (and communities) where the permission
table gives them `web.login` — a grid worker their grid, a secretary their branch's grid, a
community admin every grid of the community, a street admin every grid of the street."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import allowed, scope_of_community, scope_of_grid
from core.models import Community, Grid, Person, Ticket

ACTION = "web.login"


@dataclass(frozen=True)
class View:
    person_id: int
    grid_ids: frozenset[int]
    # communities held as a whole (admins): their tickets that no grid has yet are theirs too
    community_ids: frozenset[int]

    @property
    def empty(self) -> bool:
        return not self.grid_ids and not self.community_ids

    def sees(self, ticket: Ticket) -> bool:
        if ticket.grid_id is not None:
            return ticket.grid_id in self.grid_ids
        return ticket.community_id is not None and ticket.community_id in self.community_ids


def view_of(session: Session, person: Person) -> View:
    grids = frozenset(g for g in session.scalars(select(Grid.id).order_by(Grid.id))
                      if allowed(session, person, ACTION, scope_of_grid(session, g)))
    communities = frozenset(c for c in session.scalars(select(Community.id).order_by(Community.id))
                            if allowed(session, person, ACTION, scope_of_community(c)))
    return View(person.id, grids, communities)
