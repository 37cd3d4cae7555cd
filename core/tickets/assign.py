"""The branch's and the community's view of tickets: /tickets, 指派 and 发回.

- `branch_listing`: a secretary's (grid worker's, admin's) open tickets of each branch they may
  list, by state, with their time limits.
- `escalated_listing`: a community admin's escalated tickets (吹哨) with the reason given.
- `assign` (指派): the ticket is claimed on behalf of a member of its branch; the actor is the
  one who assigned, the claimer the member, who is told privately. A ticket already claimed is
  released first (claimed → accepted → claimed: two events, so the history says so).
- `return_to_branch` (发回): a community admin hands an escalated ticket back to its branch with
  a note (escalated → accepted); the branch group gets the card again with the note on top.

Every change goes through core.tickets.lifecycle.change_status (one TicketEvent each), after locking the
ticket's row and checking permission and state afresh, in the caller's transaction; notices are
outbox rows keyed by the event they announce. Permissions: ticket.list, ticket.assign and
ticket.return in core.access.permissions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import tickets as ticket_access
from core.access.permissions import (
    NotAllowed,
    allowed,
    branches_for,
    roles_at,
    scope_of_branch,
    scope_of_community,
)
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import (
    Branch,
    BranchMember,
    Community,
    Grid,
    Person,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from core.people.residents import first_name
from core.presentation import callbacks, cards
from core.tickets import service
from core.tickets.lifecycle import LEGAL_TRANSITIONS, change_status
from core.tickets.transfer import transferred_out

S = TicketStatus
# The states a branch still has work on, in the order /tickets shows them.
BRANCH_STATES = (S.new, S.accepted, S.reopened, S.claimed, S.escalated, S.resolved)
ASSIGNABLE = frozenset({S.accepted, S.reopened, S.claimed})
BRANCH_ROLES = frozenset({Role.secretary, Role.grid_worker})  # whose /tickets is the branch's
LIST_LIMIT = 30  # tickets one listing shows; the rest are counted


@dataclass
class Listing:
    title: str
    lines: list[str] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)  # those a button is offered for
    more: int = 0


def _due(ticket: Ticket, tz: ZoneInfo, now: datetime) -> str:
    text = t("tickets.due", respond=cards.local_time(ticket.respond_due_at, tz),
             resolve=cards.local_time(ticket.resolve_due_at, tz))
    late = ticket.resolve_due_at is not None and ticket.resolve_due_at < now and ticket.status is not S.resolved
    if ticket.overdue_at is not None or late:
        text += t("tickets.overdue")
    return text


def claimer_name(session: Session, ticket: Ticket) -> str:
    """How the ticket's claimer is named to others (梁同志), or ""."""
    person = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    return first_name(person) if person is not None else ""


def _claimer(session: Session, ticket: Ticket) -> str:
    person = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    return t("tickets.claimer", name=first_name(person)) if person is not None else ""


def branch_listing(session: Session, person: Person | None, *, tz: ZoneInfo,
                   now: datetime | None = None) -> list[Listing]:
    """One listing per branch `person` may list (ticket.list) as its secretary or grid worker: its
    open tickets by state. (A community admin's /tickets is the community's: `escalated_listing`.)"""
    now = now or utcnow()
    out = []
    for branch in branches_for(session, person, "ticket.list"):
        if not roles_at(session, person, scope_of_branch(session, branch)) & BRANCH_ROLES:
            continue
        tickets = list(session.scalars(select(Ticket).where(
            Ticket.grid_id == branch.grid_id, Ticket.status.in_(BRANCH_STATES))
            .order_by(Ticket.resolve_due_at, Ticket.id)))
        listing = Listing(t("tickets.branch_header", branch=branch.name, n=len(tickets)))
        if not tickets:
            listing.lines.append(t("tickets.none"))
        shown = 0
        for state in BRANCH_STATES:
            mine = [x for x in tickets if x.status is state]
            if not mine:
                continue
            listing.lines.append(t("tickets.state_header", status=cards.status_name(state), n=len(mine)))
            for ticket in mine:
                if shown >= LIST_LIMIT:
                    listing.more += 1
                    continue
                shown += 1
                listing.lines.append(t("tickets.line", number=ticket.number, category=ticket.category.name,
                                       place=cards.place(session, ticket), claimer=_claimer(session, ticket),
                                       due=_due(ticket, tz, now)))
                if ticket.status in ASSIGNABLE and person is not None and _may(session, person, "ticket.assign", ticket):
                    listing.tickets.append(ticket)
        if listing.more:
            listing.lines.append(t("tickets.more", n=listing.more))
        gone = transferred_out(session, branch.grid_id, now=now)
        if gone:  # 首接负责: what this branch passed on, until it is finished
            listing.lines.append(t("transfer.out_header", n=len(gone)))
            listing.lines += [t("transfer.out_line", number=x.number, category=x.category.name, grid=grid,
                                status=cards.status_name(x.status)) for x, grid in gone[:LIST_LIMIT]]
        out.append(listing)
    return out


def admin_communities(session: Session, person: Person | None) -> list[Community]:
    """The communities where `person` may hand tickets back (ticket.return): their admins'."""
    if person is None:
        return []
    ids = sorted({g.community_id for g in person.grants if g.role in (Role.community_admin, Role.operator)
                  and g.community_id is not None})
    return [c for c in (session.get(Community, i) for i in ids)
            if c is not None and allowed(session, person, "ticket.return", scope_of_community(c.id))]


def escalation_reason(session: Session, ticket: Ticket) -> tuple[str, str]:
    """Who escalated the ticket last and the reason they gave."""
    event = session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.to_status == S.escalated)
        .order_by(TicketEvent.id.desc())).first()
    if event is None:
        return t("actor.system"), ""
    actor = session.get(Person, event.actor_id) if event.actor_id else None
    return (first_name(actor) if actor else t("actor.system")), event.note or t("tickets.no_reason")


def escalated_listing(session: Session, person: Person | None, *, tz: ZoneInfo,
                      now: datetime | None = None) -> list[Listing]:
    """One listing per community `person` administers: its escalated tickets with the reasons."""
    now = now or utcnow()
    out = []
    for community in admin_communities(session, person):
        grids = select(Grid.id).where(Grid.community_id == community.id)
        tickets = list(session.scalars(select(Ticket).where(
            Ticket.status == S.escalated,
            (Ticket.community_id == community.id) | Ticket.grid_id.in_(grids)).order_by(Ticket.id)))
        listing = Listing(t("tickets.community_header", community=community.name, n=len(tickets)))
        if not tickets:
            listing.lines.append(t("tickets.none_escalated"))
        for ticket in tickets[:LIST_LIMIT]:
            who, reason = escalation_reason(session, ticket)
            grid = session.get(Grid, ticket.grid_id) if ticket.grid_id else None
            listing.lines.append(t("tickets.escalated_line", number=ticket.number, category=ticket.category.name,
                                   place=cards.place(session, ticket), grid=grid.name if grid else "",
                                   handler=who, reason=reason, due=_due(ticket, tz, now)))
            listing.tickets.append(ticket)
        out.append(_counted(listing, tickets))
    return out


def _counted(listing: Listing, tickets: list[Ticket]) -> Listing:
    """The listing with a line for the tickets beyond LIST_LIMIT it does not show."""
    listing.more = max(0, len(tickets) - LIST_LIMIT)
    if listing.more:
        listing.lines.append(t("tickets.more", n=listing.more))
    return listing


def triage_listing(session: Session, person: Person | None, *, tz: ZoneInfo,
                   now: datetime | None = None) -> list[Listing]:
    """One listing per community `person` administers: its triage queue, the tickets a branch
    退回 to the community and those no grid could be found for, oldest first, with the reasons."""
    now = now or utcnow()
    out = []
    for community in admin_communities(session, person):
        grids = select(Grid.id).where(Grid.community_id == community.id)
        tickets = list(session.scalars(select(Ticket).where(
            (Ticket.status == S.triage) & ((Ticket.community_id == community.id) | Ticket.grid_id.in_(grids))
            | (Ticket.status == S.new) & Ticket.grid_id.is_(None) & (Ticket.community_id == community.id))
            .order_by(Ticket.id)))
        listing = Listing(t("tickets.triage_header", community=community.name, n=len(tickets)))
        if not tickets:
            listing.lines.append(t("tickets.none_triage"))
        for ticket in tickets[:LIST_LIMIT]:
            grid = session.get(Grid, ticket.grid_id) if ticket.grid_id else None
            last = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                   .order_by(TicketEvent.id.desc())).first()
            reason = (last.note if last is not None and last.to_status is S.triage and last.note
                      else t("tickets.unrouted_reason") if grid is None else t("tickets.no_reason"))
            listing.lines.append(t("tickets.triage_line", number=ticket.number, category=ticket.category.name,
                                   place=cards.place(session, ticket),
                                   grid=t("tickets.triage_grid", grid=grid.name) if grid else "",
                                   reason=reason, due=_due(ticket, tz, now)))
            listing.tickets.append(ticket)
        out.append(_counted(listing, tickets))
    return out


def _may(session: Session, person: Person, action: str, ticket: Ticket) -> bool:
    return allowed(session, person, action, ticket_access.scope_of_ticket(session, ticket))


def _require(session: Session, person: Person | None, action: str, ticket: Ticket) -> Person:
    if person is None:
        raise NotAllowed(t("ticket.unknown_person"))
    if not _may(session, person, action, ticket):
        raise NotAllowed(t(f"deny.role_{action.split('.')[1]}"))
    return person


def assignees(session: Session, ticket_id: int, person: Person | None) -> tuple[Ticket, list[Person]]:
    """The ticket and the members of its branch it may be assigned to (reachable in Telegram)."""
    ticket = service.ticket_for_change(session, ticket_id)
    _require(session, person, "ticket.assign", ticket)
    if ticket.status not in ASSIGNABLE:
        raise NotAllowed(t(f"deny.state_{ticket.status.value}"))
    branch = session.scalar(select(Branch).where(Branch.grid_id == ticket.grid_id)) if ticket.grid_id else None
    if branch is None:
        return ticket, []
    members = session.scalars(select(Person).join(BranchMember, BranchMember.person_id == Person.id).where(
        BranchMember.branch_id == branch.id, Person.telegram_id.is_not(None)).order_by(Person.id))
    return ticket, [m for m in members if m.id != ticket.claimed_by_id]


def assign(session: Session, ticket_id: int, actor: Person | None, assignee_id: int, *, tz: ZoneInfo,
           now: datetime | None = None) -> Ticket:
    """指派: claim the ticket on behalf of `assignee_id`, a member of its branch; they are told."""
    now = now or utcnow()
    ticket = service.ticket_for_change(session, ticket_id, lock=True)
    actor = _require(session, actor, "ticket.assign", ticket)
    if ticket.status not in ASSIGNABLE:
        raise NotAllowed(t(f"deny.state_{ticket.status.value}"))
    _, members = assignees(session, ticket_id, actor)
    assignee = next((m for m in members if m.id == assignee_id), None)
    if assignee is None:
        raise NotAllowed(t("tickets.deny.not_member"))
    name = first_name(assignee)
    if ticket.status is S.claimed:  # reassigned: released first, so the history shows it
        change_status(session, ticket, S.accepted, actor=actor, note=t("note.released"), now=now)
    event = change_status(session, ticket, S.claimed, actor=actor, note=t("note.assigned", name=name), now=now)
    ticket.claimed_by_id = assignee.id  # the assignee claims it; the event's actor assigned it
    session.flush()
    card = cards.card_payload(session, ticket, tz=tz, lead=t("card.assigned", number=ticket.number,
                                                              handler=first_name(actor)))
    card["buttons"] = [[{"text": t("card.button_resolve"),
                         "callback_data": callbacks.ticket_action("resolve", ticket.id)}]]
    assert assignee.telegram_id is not None
    enqueue(session, dedupe_key=f"assigned:{ticket.id}:{event.id}", kind="card", chat_id=assignee.telegram_id,
            payload=card, priority=service.priority_of(ticket))
    service.tell_residents(session, ticket, event, "claimed",
                            {"text": t("notify.claimed", number=ticket.number, handler=name)})
    service.tell_branch(session, ticket, event, {"text": t(
        "line.assigned", number=ticket.number, handler=first_name(actor), assignee=name)})
    return ticket


def check_return(session: Session, person: Person | None, ticket: Ticket) -> None:
    """Raise NotAllowed unless `person` may hand `ticket` back to its branch now."""
    _require(session, person, "ticket.return", ticket)
    if ticket.status not in (S.escalated, S.triage) or ticket.grid_id is None:
        raise NotAllowed(t("tickets.deny.not_escalated"))


def return_to_branch(session: Session, ticket_id: int, actor: Person | None, note: str, *, tz: ZoneInfo,
                     now: datetime | None = None) -> Ticket:
    """发回: an escalated ticket (or one its branch 退回 to the community) goes back to its branch
    (→ accepted) with a note."""
    now = now or utcnow()
    ticket = service.ticket_for_change(session, ticket_id, lock=True)
    check_return(session, actor, ticket)
    assert actor is not None and S.accepted in LEGAL_TRANSITIONS[ticket.status]
    if not (note and note.strip()):
        raise NotAllowed(t("tickets.deny.note_return"))
    event = change_status(session, ticket, S.accepted, actor=actor, note=note.strip(), now=now)
    lead = t("card.returned", number=ticket.number, handler=first_name(actor), note=event.note)
    service.tell_branch(session, ticket, event, cards.card_payload(session, ticket, tz=tz, lead=lead))
    service.tell_residents(session, ticket, event, "returned")
    return ticket
