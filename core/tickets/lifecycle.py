"""The one place that creates tickets and changes their status.

Every change appends a TicketEvent (who, when, from → to, note); nothing else
in the code base may assign `Ticket.status`. Legal moves follow BRIEF's loop:

    new → accepted → claimed → resolved → closed
    side paths: escalated (and back), triage (退回 by a branch, for the community to place),
    rejected, duplicate, reopened, withdrawn; and a transfer to another grid (`transfer_grid`),
    which is an event of its own kind that leaves the ticket accepted in its new grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import (
    Category,
    Grid,
    Person,
    Ticket,
    TicketCounter,
    TicketDeadline,
    TicketEvent,
    TicketStatus,
    utcnow,
)

S = TicketStatus

LEGAL_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.new: frozenset({S.accepted, S.escalated, S.triage, S.rejected, S.duplicate, S.withdrawn}),
    S.accepted: frozenset({S.claimed, S.escalated, S.triage, S.rejected, S.duplicate, S.withdrawn}),
    S.claimed: frozenset({S.resolved, S.escalated, S.accepted, S.triage, S.duplicate}),  # → accepted: released
    S.escalated: frozenset({S.accepted, S.claimed, S.resolved, S.rejected, S.duplicate}),  # handed back
    S.triage: frozenset({S.accepted, S.claimed, S.rejected, S.duplicate}),  # placed, taken, or not ours
    S.resolved: frozenset({S.closed, S.reopened}),
    S.reopened: frozenset({S.claimed, S.escalated, S.resolved, S.accepted, S.triage, S.duplicate}),
    S.closed: frozenset(),
    S.rejected: frozenset(),
    S.duplicate: frozenset(),
    S.withdrawn: frozenset(),  # 撤回 by the reporter before a claim (core.tickets.changes)
}

# Moves whose note is required, because the next reader needs to know why.
NOTE_REQUIRED = {S.resolved: "what was done", S.rejected: "the reason and where to turn",
                 S.triage: "the reason and whose matter it is"}
# Where a ticket may be transferred from (改派): anything still waiting for a handler or handled.
TRANSFERABLE = frozenset({S.new, S.accepted, S.claimed, S.escalated, S.triage, S.reopened})


class IllegalTransition(ValueError):
    def __init__(self, ticket: Ticket, to_status: TicketStatus, reason: str | None = None) -> None:
        allowed = ", ".join(sorted(s.value for s in LEGAL_TRANSITIONS[ticket.status])) or "none"
        detail = reason or f"allowed from {ticket.status.value}: {allowed}"
        super().__init__(
            f"ticket {ticket.number}: cannot go from {ticket.status.value} to {to_status.value} ({detail})"
        )
        self.ticket_number = ticket.number
        self.from_status = ticket.status
        self.to_status = to_status


@dataclass
class NewTicket:
    category_code: str
    description: str
    reporter_id: int | None = None
    community_id: int | None = None
    grid_id: int | None = None
    building_id: int | None = None
    landmark_id: int | None = None
    location_text: str | None = None
    lat: float | None = None
    lon: float | None = None
    photo_file_ids: list[str] = field(default_factory=list)
    anonymous: bool = False
    submission_key: str | None = None  # see Ticket.submission_key


def next_ticket_number(session: Session, year: int) -> tuple[int, str]:
    """Issue the next number of `year`, like 2026-000123.

    The counter row is bumped with one UPDATE … RETURNING, which PostgreSQL
    serialises on the row lock and SQLite on its write lock, so concurrent
    filers never get the same number; the UNIQUE(number) constraint backs it up.
    """
    dialect = session.get_bind().dialect.name
    ins: object
    if dialect == "postgresql":
        ins = postgresql.insert(TicketCounter).values(year=year, last=0).on_conflict_do_nothing()
    elif dialect == "sqlite":
        ins = sqlite.insert(TicketCounter).values(year=year, last=0).on_conflict_do_nothing()
    else:  # pragma: no cover - other dialects are not supported
        ins = insert(TicketCounter).values(year=year, last=0)
    session.execute(ins)
    seq = session.execute(
        update(TicketCounter)
        .where(TicketCounter.year == year)
        .values(last=TicketCounter.last + 1)
        .returning(TicketCounter.last)
    ).scalar_one()
    return seq, f"{year}-{seq:06d}"


def file_ticket(
    session: Session, data: NewTicket, *, tz: ZoneInfo, now: datetime | None = None
) -> Ticket:
    """Create a ticket in status `new` with its first event and due times."""
    now = now or utcnow()
    category = session.get(Category, data.category_code)
    if category is None or not category.active:
        raise ValueError(f"unknown or inactive category {data.category_code!r}")
    if not data.description.strip():
        raise ValueError("a ticket needs a description")
    year = now.astimezone(tz).year
    seq, number = next_ticket_number(session, year)
    ticket = Ticket(
        number=number,
        year=year,
        seq=seq,
        category_code=category.code,
        urgent=category.kind.value == "emergency",
        status=S.new,
        respond_due_at=now + timedelta(minutes=category.respond_minutes),
        resolve_due_at=now + timedelta(minutes=category.resolve_minutes),
        first_respond_due_at=now + timedelta(minutes=category.respond_minutes),
        first_resolve_due_at=now + timedelta(minutes=category.resolve_minutes),
        created_at=now,
        updated_at=now,
        **{k: v for k, v in vars(data).items() if k != "category_code"},
    )
    session.add(ticket)
    session.flush()
    session.add(
        TicketEvent(ticket_id=ticket.id, actor_id=data.reporter_id, at=now, from_status=None,
                    to_status=S.new, note=None)
    )
    session.flush()
    return ticket


def change_status(
    session: Session,
    ticket: Ticket,
    to_status: TicketStatus,
    *,
    actor: Person | None,
    note: str | None = None,
    duplicate_of: Ticket | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    """Move `ticket` to `to_status` or raise IllegalTransition and change nothing."""
    now = now or utcnow()
    if to_status not in LEGAL_TRANSITIONS[ticket.status]:
        raise IllegalTransition(ticket, to_status)
    if to_status in NOTE_REQUIRED and not (note and note.strip()):
        raise IllegalTransition(ticket, to_status, f"a note is required: {NOTE_REQUIRED[to_status]}")
    if to_status == S.duplicate:
        if duplicate_of is None or duplicate_of.id == ticket.id:
            raise IllegalTransition(ticket, to_status, "a duplicate must point at another ticket")
        ticket.duplicate_of_id = duplicate_of.id
    if to_status == S.claimed:
        if actor is None:
            raise IllegalTransition(ticket, to_status, "a claim needs the person who claims")
        ticket.claimed_by_id = actor.id
    elif to_status in (S.accepted, S.escalated, S.reopened, S.triage):
        ticket.claimed_by_id = None
    event = TicketEvent(
        ticket_id=ticket.id,
        actor_id=actor.id if actor else None,
        at=now,
        from_status=ticket.status,
        to_status=to_status,
        note=note,
    )
    ticket.status = to_status
    ticket.updated_at = now
    session.add(event)
    session.flush()
    if to_status == S.reopened:
        renew_limits(session, ticket, now=now)
    return event


def transfer_grid(session: Session, ticket: Ticket, grid: Grid, *, actor: Person, note: str,
                  now: datetime | None = None) -> TicketEvent:
    """改派: the ticket moves to `grid` (and its community) and waits there, accepted and unclaimed;
    one event of kind "transfer" says from which grid to which. Its limits stay as they were: the
    resident's wait does not start again. Who may, and to where, is core.tickets.transfer's."""
    now = now or utcnow()
    if ticket.status not in TRANSFERABLE:
        raise IllegalTransition(ticket, S.accepted, "only an open ticket nobody has finished can be transferred")
    if grid.id == ticket.grid_id:
        raise IllegalTransition(ticket, S.accepted, "a transfer goes to another grid")
    if not note.strip():
        raise IllegalTransition(ticket, S.accepted, "a note is required: the reason")
    event = TicketEvent(ticket_id=ticket.id, actor_id=actor.id, at=now, from_status=ticket.status,
                        to_status=S.accepted, note=note.strip(), kind="transfer",
                        detail={"from": ticket.grid_id, "to": grid.id})
    ticket.grid_id, ticket.community_id = grid.id, grid.community_id
    ticket.status, ticket.claimed_by_id, ticket.updated_at = S.accepted, None, now
    session.add(event)
    session.flush()
    return event


def renew_limits(session: Session, ticket: Ticket, *, now: datetime) -> None:
    """A reopened ticket gets fresh limits from `now`, is no longer overdue, and its next round of
    deadline steps is planned (core.tickets.deadlines)."""
    category = ticket.category
    ticket.respond_due_at = now + timedelta(minutes=category.respond_minutes)
    ticket.resolve_due_at = now + timedelta(minutes=category.resolve_minutes)
    ticket.overdue_at = None
    session.execute(update(TicketDeadline).where(TicketDeadline.ticket_id == ticket.id, TicketDeadline.done_at.is_(None))
                    .values(done_at=now, outcome="skipped"))  # the old round's steps no longer apply
    ticket.deadline_round += 1
    ticket.deadlines_pending = True
    session.flush()


def get_by_id(session: Session, ticket_id: int) -> Ticket | None:
    return session.get(Ticket, ticket_id)


def get_by_number(session: Session, number: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.number == number))


def events_of(session: Session, ticket: Ticket) -> list[TicketEvent]:
    """The ticket's events, oldest first, fresh from the database (not the possibly stale relationship)."""
    query = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
    return list(session.scalars(query))
