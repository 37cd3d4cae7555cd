"""Who hears of a new ticket: destinations as data, as FixMyStreet's contacts and send methods.

`NEW_TICKET` is the table: each row names a kind of recipient, the situation in which it gets
the ticket's card, and the line shown above the card. `for_new_ticket` is the one function that
reads it; `recipients` turns a kind into the chats it reaches. Nothing else decides who is told.

| to               | when                                                  | lead           |
| ---------------- | ----------------------------------------------------- | -------------- |
| branch_group     | routed to a grid whose branch has a group chat        |                |
| grid_workers     | routed, and urgent or the branch has no group chat    |                |
| community_admins | routed, and urgent or the branch has no group chat    |                |
| community_admins | not routed (no grid), the community known             | card.unrouted  |
| every_admin      | not routed, no community known, urgent                | card.unrouted  |

An urgent ticket nobody can place goes to every community's admins: a page too many costs far
less than an emergency nobody hears of. A plain one nobody can place reaches no one but stays
`new` in the queue (`gridbot tickets`), where the operator sees it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Branch, Community, Person, Role, RoleGrant, Ticket


class To(str, enum.Enum):
    branch_group = "branch_group"  # the grid's party-branch group chat
    grid_workers = "grid_workers"  # the grid's 网格员, each privately
    community_admins = "community_admins"  # the ticket's community's admins, each privately
    every_admin = "every_admin"  # every community's admins
    street_admins = "street_admins"  # the admins of the street the ticket's community is on


@dataclass(frozen=True)
class Situation:
    routed: bool  # the ticket has a grid
    urgent: bool
    group: bool  # the grid's branch has a group chat
    community: bool  # the ticket's community is known


@dataclass(frozen=True)
class Destination:
    to: To
    when: Callable[[Situation], bool]
    lead: str | None = None  # catalogue key of the line above the card


NEW_TICKET: tuple[Destination, ...] = (
    Destination(To.branch_group, lambda s: s.routed and s.group),
    Destination(To.grid_workers, lambda s: s.routed and (s.urgent or not s.group)),
    Destination(To.community_admins, lambda s: s.routed and (s.urgent or not s.group)),
    Destination(To.community_admins, lambda s: not s.routed and s.community, "card.unrouted"),
    Destination(To.every_admin, lambda s: not s.routed and not s.community and s.urgent, "card.unrouted"),
)


def for_new_ticket(situation: Situation) -> list[Destination]:
    return [d for d in NEW_TICKET if d.when(situation)]


def situation(session: Session, ticket: Ticket) -> Situation:
    branch = branch_of(session, ticket)
    return Situation(routed=ticket.grid_id is not None, urgent=ticket.urgent,
                     group=branch is not None and branch.telegram_chat_id is not None,
                     community=ticket.community_id is not None)


def branch_of(session: Session, ticket: Ticket) -> Branch | None:
    if ticket.grid_id is None:
        return None
    return session.scalar(select(Branch).where(Branch.grid_id == ticket.grid_id))


def _people(session: Session, role: Role, **scope: int) -> list[Person]:
    where = [RoleGrant.role == role, Person.telegram_id.is_not(None)]
    where += [getattr(RoleGrant, column) == value for column, value in scope.items()]
    return list(session.scalars(select(Person).join(Person.grants).where(*where).distinct().order_by(Person.id)))


def recipients(session: Session, ticket: Ticket, to: To) -> list[int]:
    """The chat ids a destination reaches for this ticket (none when it has nobody)."""
    if to is To.branch_group:
        branch = branch_of(session, ticket)
        return [branch.telegram_chat_id] if branch is not None and branch.telegram_chat_id is not None else []
    if to is To.grid_workers:
        people = _people(session, Role.grid_worker, grid_id=ticket.grid_id) if ticket.grid_id is not None else []
    elif to is To.community_admins:
        people = (_people(session, Role.community_admin, community_id=ticket.community_id)
                  if ticket.community_id is not None else [])
    elif to is To.street_admins:
        community = session.get(Community, ticket.community_id) if ticket.community_id is not None else None
        people = _people(session, Role.street_admin, street_id=community.street_id) if community is not None else []
    else:
        people = _people(session, Role.community_admin)
    return [p.telegram_id for p in people if p.telegram_id is not None]
