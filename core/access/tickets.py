"""Who may do what to one ticket: the permission table's ticket actions, and a person's relation to it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, Scope, allowed, roles_at
from core.messages import t
from core.models import Grid, Person, Role, Ticket, TicketFollower, TicketStatus
from core.tickets import destinations
from core.tickets.lifecycle import LEGAL_TRANSITIONS

S = TicketStatus


# Who may do what. The role part is core.access.permissions.PERMISSIONS (ticket.<action>, scoped
# to the ticket's branch, grid and community); on top of it, a person's relation to one
# ticket: its claimer may resolve it, its reporter and followers (and only they) rate it.
# The community admin may do every handler action but not rate: satisfaction is the
# residents' word.
PERMISSION: dict[str, str] = {
    "claim": "ticket.claim",
    "resolve": "ticket.resolve",
    "escalate": "ticket.escalate",
    "reject": "ticket.reject",
    "contact": "ticket.contact",
    "urge": "ticket.urge",
    "transfer": "ticket.transfer",
    "take": "ticket.take",
    "merge": "ticket.merge",
}

RELATIONS: dict[str, frozenset[str]] = {
    "resolve": frozenset({"claimer"}),
    "rate": frozenset({"reporter", "follower"}),
}

ACTIONS = frozenset(PERMISSION) | frozenset(RELATIONS)

TARGET = {"claim": S.claimed, "resolve": S.resolved, "escalate": S.escalated, "reject": S.rejected}
# 退回 by the community (an admin, the street, an operator) is final: not a grid matter at all. By a
# branch it is "not ours": the ticket goes to the community's triage queue (core.tickets.transfer).
COMMUNITY_LEVEL = frozenset({Role.community_admin, Role.street_admin, Role.operator})


def reject_target(session: Session, person: Person, ticket: Ticket) -> TicketStatus:
    """Where `person`'s 退回 takes `ticket`: rejected (the community's word) or triage (a branch's)."""
    return S.rejected if roles_at(session, person, scope_of_ticket(session, ticket)) & COMMUNITY_LEVEL else S.triage


def community_id_of(session: Session, ticket: Ticket) -> int | None:
    if ticket.community_id is not None or ticket.grid_id is None:
        return ticket.community_id
    grid = session.get(Grid, ticket.grid_id)
    return grid.community_id if grid else None


def follower_ids(session: Session, ticket: Ticket) -> list[int]:
    return list(session.scalars(select(TicketFollower.person_id)
                                .where(TicketFollower.ticket_id == ticket.id).order_by(TicketFollower.id)))


def scope_of_ticket(session: Session, ticket: Ticket) -> Scope:
    """Where a ticket's handling happens: its community, grid and the grid's branch."""
    branch = destinations.branch_of(session, ticket)
    return Scope(community_id=community_id_of(session, ticket), grid_id=ticket.grid_id,
                 branch_id=branch.id if branch is not None else None)


def relations(session: Session, person: Person, ticket: Ticket) -> set[str]:
    """What `person` is to this one ticket: reporter, follower, claimer."""
    found = set()
    if ticket.reporter_id == person.id:
        found.add("reporter")
    if person.id in follower_ids(session, ticket):
        found.add("follower")
    if ticket.claimed_by_id == person.id:
        found.add("claimer")
    return found


def check(session: Session, person: Person | None, action: str, ticket: Ticket) -> None:
    """Raise NotAllowed unless `person` may do `action` to `ticket` in its current state.

    Allowed: a role PERMISSIONS gives for ticket.<action> at the ticket's scope, or a
    relation RELATIONS gives (claimer resolves, reporter and followers rate).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if person is None:
        raise NotAllowed(t("ticket.unknown_person"))
    by_role = action in PERMISSION and allowed(session, person, PERMISSION[action],
                                                scope_of_ticket(session, ticket))
    if not by_role and not relations(session, person, ticket) & RELATIONS.get(action, frozenset()):
        raise NotAllowed(t(f"deny.role_{action}"))
    # the return visit (core.tickets.visit) takes answers while the ticket is resolved, and its
    # satisfaction after 未解决 reopened it, until it is resolved again
    if action == "rate" and ticket.status is not S.resolved and not (ticket.solved is False and ticket.rating is None):
        raise NotAllowed(t("deny.rated") if ticket.rating is not None
                         else t("deny.state_closed") if ticket.status is S.closed else t("deny.not_resolved"))
    target = reject_target(session, person, ticket) if action == "reject" else TARGET.get(action)
    if target is not None and target not in LEGAL_TRANSITIONS[ticket.status]:
        raise NotAllowed(t(f"deny.state_{ticket.status.value}"))
