"""The ticket service both front ends call: filing, claim, resolve, escalate, reject, contact,
auto-close, duplicates and joining, and who hears of each (the return visit's answers:
core.tickets.visit).

Every function works in the caller's transaction and never commits. Status changes go
through core.tickets.lifecycle.change_status, after locking the ticket's row and checking the
permission and the state afresh (`ticket_for_change(lock=True)`), so presses that race each other
are one change and clean refusals; every notice is an outbox row whose dedupe key names
the TicketEvent it announces, so a retried call never queues the same notice twice.
Who may press what is core.access.tickets; what the card says is core.presentation.cards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed
from core.access.tickets import TARGET, check, follower_ids, reject_target
from core.messages import t
from core.messaging.outbox import PRIORITY_URGENT, enqueue
from core.models import Grid, Person, Ticket, TicketEvent, TicketFollower, TicketStatus, utcnow
from core.people.residents import first_name
from core.presentation.cards import card_payload, local_time, status_name, visit_buttons
from core.tickets import deadlines, destinations
from core.tickets.lifecycle import NewTicket, change_status, events_of, file_ticket

S = TicketStatus
log = logging.getLogger("gridbot.workflow")

OPEN = frozenset(S) - {S.closed, S.rejected, S.duplicate, S.withdrawn}


# -- where a ticket belongs ----------------------------------------------------


def ticket_for_change(session: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
    """The ticket; with `lock`, its row locked until the caller's transaction ends and its state
    read afresh after the lock was granted.

    Every status change locks first and checks after: twenty 领单 presses at once on
    PostgreSQL (SELECT … FOR UPDATE) wait for each other, the first claims and the others
    find the ticket claimed and are refused (NotAllowed), never a second claim. SQLite has
    no row locks (FOR UPDATE is not rendered) and needs none: every writing transaction
    begins with BEGIN IMMEDIATE (core.db), so writers run one after the other anyway.
    """
    if lock:
        ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    else:
        ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotAllowed(t("ticket.not_found"))
    return ticket


# -- texts and sending -----------------------------------------------------------


def priority_of(ticket: Ticket) -> int | None:
    """An emergency's messages go before everything but nothing (core.messaging.outbox priorities)."""
    return PRIORITY_URGENT if ticket.urgent else None


def tell_residents(session: Session, ticket: Ticket, event: TicketEvent, kind: str,
                    payload: dict[str, Any] | None = None) -> None:
    """The reporter and every follower with a Telegram id, once per event (default text: notify.<kind>)."""
    payload = payload or {"text": t(f"notify.{kind}", number=ticket.number)}
    ids = ([ticket.reporter_id] if ticket.reporter_id else []) + follower_ids(session, ticket)
    for person_id in dict.fromkeys(ids):
        person = session.get(Person, person_id)
        if person is not None and person.telegram_id is not None:
            enqueue(session, dedupe_key=f"{kind}:{ticket.id}:{event.id}:{person.telegram_id}",
                    kind="notice", chat_id=person.telegram_id, payload=payload, priority=priority_of(ticket))


def tell_branch(session: Session, ticket: Ticket, event: TicketEvent, payload: dict[str, Any]) -> None:
    """A line about the ticket's progress in its branch's group, if it has one."""
    for chat_id in destinations.recipients(session, ticket, destinations.To.branch_group):
        enqueue(session, dedupe_key=f"branch:{ticket.id}:{event.id}", kind="line", chat_id=chat_id, payload=payload,
                priority=priority_of(ticket))


def _tell_admins(session: Session, ticket: Ticket, event: TicketEvent, payload: dict[str, Any]) -> None:
    for chat_id in destinations.recipients(session, ticket, destinations.To.community_admins):
        enqueue(session, dedupe_key=f"admin:{ticket.id}:{event.id}:{chat_id}",
                kind="card", chat_id=chat_id, payload=payload, priority=priority_of(ticket))


def _send_cards(session: Session, ticket: Ticket, event: TicketEvent, *, tz: ZoneInfo) -> None:
    """A new ticket's card to every destination core/tickets/destinations.py's table names for it."""
    for destination in destinations.for_new_ticket(destinations.situation(session, ticket)):
        card = card_payload(session, ticket, tz=tz, lead=t(destination.lead) if destination.lead else None,
                            admin=destination.to in (destinations.To.community_admins, destinations.To.every_admin))
        for chat_id in destinations.recipients(session, ticket, destination.to):
            enqueue(session, dedupe_key=f"{destination.to.value}:{ticket.id}:{event.id}:{chat_id}",
                    kind="card", chat_id=chat_id, payload=card, priority=priority_of(ticket))


# -- the loop ----------------------------------------------------------------------


def submit_report(session: Session, data: NewTicket, *, tz: ZoneInfo, now: datetime | None = None,
                  notify_reporter: bool = True) -> Ticket:
    """File a ticket, route it to its grid's branch (urgent ones to the community admin too).

    `notify_reporter=False` when the caller answers the reporter itself in the dialogue.
    """
    now = now or utcnow()
    if data.submission_key is not None:
        earlier = session.scalar(select(Ticket).where(Ticket.submission_key == data.submission_key))
        if earlier is not None:  # the same message submitted again after a crash: filed once, told once
            return earlier
    ticket = file_ticket(session, data, tz=tz, now=now)
    grid = session.get(Grid, ticket.grid_id) if ticket.grid_id is not None else None
    if grid is None:  # stays `new`; the community (if known) has to place it
        event = events_of(session, ticket)[-1]
        _send_cards(session, ticket, event, tz=tz)
        if notify_reporter:
            tell_residents(session, ticket, event, "received")
        return ticket
    if ticket.community_id is None:
        ticket.community_id = grid.community_id
    event = change_status(session, ticket, S.accepted, actor=None, now=now,
                          note=t("note.routed", grid=grid.name))
    _send_cards(session, ticket, event, tz=tz)
    if notify_reporter:
        tell_residents(session, ticket, event, "accepted", {"text": t(
            "notify.accepted", number=ticket.number, grid=grid.name, due=local_time(ticket.resolve_due_at, tz))})
    return ticket


def _move(session: Session, ticket_id: int, person: Person | None, action: str, note: str | None,
          now: datetime | None) -> tuple[Ticket, TicketEvent, Person]:
    ticket = ticket_for_change(session, ticket_id, lock=True)
    check(session, person, action, ticket)
    assert person is not None  # check() refuses nobody
    if action == "resolve" and not (note and note.strip()):
        raise NotAllowed(t(f"deny.note_{action}"))
    event = change_status(session, ticket, TARGET[action], actor=person,
                          note=note.strip() if note else None, now=now)
    return ticket, event, person


def claim(session: Session, ticket_id: int, person: Person | None, *, now: datetime | None = None) -> Ticket:
    ticket, event, person = _move(session, ticket_id, person, "claim", None, now)
    handler = first_name(person)
    tell_residents(session, ticket, event, "claimed",
                    {"text": t("notify.claimed", number=ticket.number, handler=handler)})
    tell_branch(session, ticket, event, {"text": t("line.claimed", number=ticket.number, handler=handler)})
    return ticket


def resolve(session: Session, ticket_id: int, person: Person | None, note: str,
            photo_file_id: str | None = None, *, now: datetime | None = None) -> Ticket:
    ticket, event, person = _move(session, ticket_id, person, "resolve", note, now)
    ticket.resolution_photo_id = photo_file_id
    ticket.solved = ticket.rating = ticket.rated_at = None  # a new return visit (core.tickets.visit)
    payload: dict[str, Any] = {"text": t("notify.resolved", number=ticket.number, note=event.note),
                               "buttons": visit_buttons(ticket.id)}
    if photo_file_id:
        payload["photo"] = photo_file_id
    tell_residents(session, ticket, event, "resolved", payload)
    tell_branch(session, ticket, event,
                 {"text": t("line.resolved", number=ticket.number, handler=first_name(person))})
    return ticket


def escalate(session: Session, ticket_id: int, person: Person | None, note: str | None = None, *,
             tz: ZoneInfo, now: datetime | None = None) -> Ticket:
    """吹哨: hand the ticket to the community; its admins get the card."""
    ticket, event, person = _move(session, ticket_id, person, "escalate", note, now)
    handler = first_name(person)
    lead = t("card.escalated", number=ticket.number, handler=handler, note=event.note or "")
    _tell_admins(session, ticket, event, card_payload(session, ticket, tz=tz, lead=lead, admin=True))
    tell_residents(session, ticket, event, "escalated")
    tell_branch(session, ticket, event, {"text": t("line.escalated", number=ticket.number, handler=handler)})
    return ticket


def reject(session: Session, ticket_id: int, person: Person | None, reason: str, *, tz: ZoneInfo,
           now: datetime | None = None) -> Ticket:
    """退回. By a branch: not its matter, so the ticket goes to the community's triage queue and its
    admins get the card to place it (core.tickets.transfer). By the community: not a grid matter at
    all, and the residents get the reason and the 12345 referral."""
    ticket = ticket_for_change(session, ticket_id, lock=True)
    check(session, person, "reject", ticket)
    assert person is not None
    if not (reason and reason.strip()):
        raise NotAllowed(t("deny.note_reject"))
    target = reject_target(session, person, ticket)
    event = change_status(session, ticket, target, actor=person, note=reason.strip(), now=now)
    handler = first_name(person)
    if target is S.triage:
        lead = t("card.triage", number=ticket.number, handler=handler, note=event.note)
        _tell_admins(session, ticket, event, card_payload(session, ticket, tz=tz, lead=lead, admin=True))
        tell_residents(session, ticket, event, "triage", {"text": t("triage.notify", number=ticket.number)})
        tell_branch(session, ticket, event, {"text": t("triage.line", number=ticket.number, handler=handler,
                                                       note=event.note)})
        return ticket
    tell_residents(session, ticket, event, "rejected",
                    {"text": t("notify.rejected", number=ticket.number, reason=event.note)})
    tell_branch(session, ticket, event, {"text": t(
        "line.rejected", number=ticket.number, handler=handler, reason=event.note)})
    return ticket


def contact_details(session: Session, ticket_id: int, person: Person | None) -> str:
    """The reporter's full name and phone, for the secretary, grid worker or admin only.

    Every time they are shown, the audit log says who saw whose contact (ticket.contact);
    a refusal or an anonymous ticket shows nothing and records nothing.
    """
    ticket = ticket_for_change(session, ticket_id)
    check(session, person, "contact", ticket)
    reporter = session.get(Person, ticket.reporter_id) if ticket.reporter_id else None
    if reporter is None or ticket.anonymous:
        return t("contact.anonymous", number=ticket.number)
    audit.record(session, person, "ticket.contact", f"ticket:{ticket.id}",
                 {"number": ticket.number, "reporter": f"person:{reporter.id}", "phone": bool(reporter.phone)})
    log.info("contact of ticket %s shown to person %s", ticket.number, person.id if person else None)
    return t("contact.details", number=ticket.number, name=reporter.display_name,
             phone=reporter.phone or t("card.no_phone"))


def urge(session: Session, ticket_id: int, person: Person | None, *, now: datetime | None = None) -> bool:
    """督办 (core.tickets.deadlines.urge) by someone the table allows; False when pressed again within a minute."""
    ticket = ticket_for_change(session, ticket_id, lock=True)
    check(session, person, "urge", ticket)
    assert person is not None
    return deadlines.urge(session, ticket, person, now=now or utcnow())


def close_unrated(session: Session, now: datetime | None = None, days: int = 3) -> int:
    """Close resolved tickets whose return visit was not completed within `days` of the resolution
    (no answer, or only one of the two: it is kept); how many were closed."""
    now = now or utcnow()
    resolved_at = (select(TicketEvent.ticket_id, func.max(TicketEvent.at).label("at"))
                   .where(TicketEvent.to_status == S.resolved, TicketEvent.kind == "status").group_by(TicketEvent.ticket_id).subquery())
    stale = session.scalars(select(Ticket.id).join(resolved_at, resolved_at.c.ticket_id == Ticket.id)
                            .where(Ticket.status == S.resolved, resolved_at.c.at < now - timedelta(days=days))
                            .order_by(Ticket.id)).all()
    closed = 0
    for ticket_id in stale:
        ticket = ticket_for_change(session, ticket_id, lock=True)
        if ticket.status is not S.resolved:  # answered (or reopened) meanwhile
            continue
        half = ticket.solved is not None or ticket.rating is not None  # one of the visit's two answers, kept
        event = change_status(session, ticket, S.closed, actor=None,
                              note=t("note.auto_closed_half" if half else "note.auto_closed"), now=now)
        tell_residents(session, ticket, event, "closed")
        closed += 1
    return closed


# -- duplicates, following, looking back -------------------------------------------


def find_duplicates(session: Session, category_code: str, grid_id: int, building_id: int | None = None,
                    now: datetime | None = None, days: int = 7) -> list[Ticket]:
    """Open tickets of the same category in the same building (or grid) of the last `days`, newest first."""
    now = now or utcnow()
    query = select(Ticket).where(Ticket.category_code == category_code, Ticket.grid_id == grid_id,
                                 Ticket.status.in_(OPEN), Ticket.created_at >= now - timedelta(days=days))
    if building_id is not None:
        query = query.where(Ticket.building_id == building_id)
    return list(session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc())))


def join(session: Session, ticket_id: int, person: Person) -> Ticket:
    """我也遇到了: follow the ticket (idempotent) and hear its number and status."""
    ticket = ticket_for_change(session, ticket_id)
    if ticket.reporter_id != person.id and person.id not in follower_ids(session, ticket):
        session.add(TicketFollower(ticket_id=ticket.id, person_id=person.id))
        session.flush()
    last = events_of(session, ticket)[-1].id
    if person.telegram_id is not None:
        enqueue(session, dedupe_key=f"joined:{ticket.id}:{last}:{person.telegram_id}", kind="notice",
                chat_id=person.telegram_id,
                payload={"text": t("notify.joined", number=ticket.number, status=status_name(ticket.status))})
    return ticket


def tickets_of(session: Session, person: Person, limit: int = 10) -> list[Ticket]:
    """Tickets the person reported or follows, newest first."""
    followed = select(TicketFollower.ticket_id).where(TicketFollower.person_id == person.id)
    return list(session.scalars(
        select(Ticket).where(or_(Ticket.reporter_id == person.id, Ticket.id.in_(followed)))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)))


