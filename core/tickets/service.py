"""The ticket workflow both front ends share: who may do what to a ticket, and who hears of it.

Every function works in the caller's transaction and never commits. Status changes go
through core.tickets.lifecycle.change_status, after locking the ticket's row and checking the
permission and the state afresh (`_ticket(lock=True)`), so presses that race each other
are one change and clean refusals; every notice is an outbox row whose dedupe key names
the TicketEvent it announces, so a retried call never queues the same notice twice.
Texts come from data/messages/zh.yml. Button callback data (each well under 64 bytes):
"t:<action>:<ticket id>" on the card in the branch group (claim, resolve, escalate,
reject, contact) and "r:<ticket id>:<score>" on the resident's 问题解决了吗 question.
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core import audit
from core.access.limits import BIND_ACTION
from core.access.permissions import NotAllowed, Scope, allowed
from core.config import get_settings
from core.messages import t
from core.messaging.outbox import PRIORITY_URGENT, enqueue
from core.models import (
    Building,
    Grid,
    Landmark,
    Person,
    Role,
    RoleGrant,
    Ticket,
    TicketEvent,
    TicketFollower,
    TicketStatus,
    utcnow,
)
from core.tickets import destinations
from core.tickets.lifecycle import LEGAL_TRANSITIONS, NewTicket, change_status, file_ticket

S = TicketStatus
log = logging.getLogger("gridbot.workflow")

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
}
RELATIONS: dict[str, frozenset[str]] = {
    "resolve": frozenset({"claimer"}),
    "rate": frozenset({"reporter", "follower"}),
}
ACTIONS = frozenset(PERMISSION) | frozenset(RELATIONS)
TARGET = {"claim": S.claimed, "resolve": S.resolved, "escalate": S.escalated, "reject": S.rejected}
RATINGS = {3: S.closed, 2: S.closed, 1: S.reopened}  # 满意, 基本满意, 不满意
OPEN = frozenset(S) - {S.closed, S.rejected, S.duplicate}


# -- people ------------------------------------------------------------------

def person_by_telegram(session: Session, telegram_id: int | None) -> Person | None:
    if telegram_id is None:
        return None
    return session.scalar(select(Person).where(Person.telegram_id == telegram_id))


def _ensure_resident(person: Person) -> None:
    if not any(g.role is Role.resident and g.community_id is None and g.grid_id is None
               and g.branch_id is None for g in person.grants):
        person.grants.append(RoleGrant(role=Role.resident))


def reporter_for(session: Session, telegram_id: int | None, display_name: str) -> Person | None:
    """The person behind a chat sender, created (no building, no consent) on first report."""
    if telegram_id is None:
        return None
    person = person_by_telegram(session, telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, display_name=display_name.strip() or t("actor.resident"))
        _ensure_resident(person)
        session.add(person)
        session.flush()
    return person


def bind_resident(session: Session, telegram_id: int, display_name: str, building_id: int,
                  consent: bool, *, now: datetime | None = None) -> Person:
    """Record where a resident lives and whether handlers may see their contact; re-binding updates
    (and withdrawing consent hides the contact on the tickets they filed before).

    Every binding is audited (resident.bind: whether they moved and consented, never the
    address); core.access.limits counts them for the /start limit.
    """
    if session.get(Building, building_id) is None:
        raise ValueError(f"unknown building id {building_id}")
    person = person_by_telegram(session, telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, display_name=display_name.strip() or t("actor.resident"))
        session.add(person)
    elif display_name.strip() and person.code is None:  # the registry's name wins over Telegram's
        person.display_name = display_name.strip()
    moved = person.building_id != building_id
    person.building_id = building_id
    if person.contact_consent and not consent and person.id is not None:
        # Consent withdrawn: their earlier tickets no longer show handlers who reported them.
        session.execute(update(Ticket).where(Ticket.reporter_id == person.id).values(anonymous=True)
                        .execution_options(synchronize_session="fetch"))
    person.contact_consent = consent
    _ensure_resident(person)
    session.flush()
    audit.record(session, person, BIND_ACTION, f"person:{person.id}",
                 {"moved": moved, "consent": consent}, at=now)
    return person


def first_name(person: Person) -> str:
    """How a handler is named to residents: 张同志, never the full name or phone."""
    name = person.display_name.strip()
    if name and "\u4e00" <= name[0] <= "\u9fff":
        return t("name.comrade", family=name[0])
    return name.split()[0] if name else t("actor.system")


def mask_name(name: str) -> str:
    return (name.strip()[:1] or "*") + "**"


PHONE_SHOWN = 4  # at most the last four digits of a phone are ever shown
PHONE_HIDDEN = 4  # and at least four stay hidden, so a short number is never shown whole


def mask_phone(phone: str | None) -> str:
    """A phone as the ticket card shows it: "****" and at most its last four digits.

    Only digits count (spaces, dashes, "+86" and full-width digits are read as digits);
    at least PHONE_HIDDEN of them stay hidden, so a 7-digit number shows its last three
    and a 4-digit one none. The mask has a fixed width and does not tell the length.
    """
    if phone is None or not phone.strip():
        return t("card.no_phone")
    digits = "".join(str(unicodedata.decimal(c)) for c in phone if c.isdecimal())
    shown = max(0, min(PHONE_SHOWN, len(digits) - PHONE_HIDDEN))
    return "****" + (digits[-shown:] if shown else "")


# -- where a ticket belongs ----------------------------------------------------

def _ticket(session: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
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


def events_of(session: Session, ticket: Ticket) -> list[TicketEvent]:
    """The ticket's events, oldest first, fresh from the database (not the possibly stale relationship)."""
    query = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
    return list(session.scalars(query))


def _community_id(session: Session, ticket: Ticket) -> int | None:
    if ticket.community_id is not None or ticket.grid_id is None:
        return ticket.community_id
    grid = session.get(Grid, ticket.grid_id)
    return grid.community_id if grid else None


def _follower_ids(session: Session, ticket: Ticket) -> list[int]:
    return list(session.scalars(select(TicketFollower.person_id)
                                .where(TicketFollower.ticket_id == ticket.id).order_by(TicketFollower.id)))


def scope_of_ticket(session: Session, ticket: Ticket) -> Scope:
    """Where a ticket's handling happens: its community, grid and the grid's branch."""
    branch = destinations.branch_of(session, ticket)
    return Scope(community_id=_community_id(session, ticket), grid_id=ticket.grid_id,
                 branch_id=branch.id if branch is not None else None)


def relations(session: Session, person: Person, ticket: Ticket) -> set[str]:
    """What `person` is to this one ticket: reporter, follower, claimer."""
    found = set()
    if ticket.reporter_id == person.id:
        found.add("reporter")
    if person.id in _follower_ids(session, ticket):
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
    if action == "rate" and ticket.status is not S.resolved:
        raise NotAllowed(t("deny.rated") if ticket.rating is not None
                         else t("deny.state_closed") if ticket.status is S.closed else t("deny.not_resolved"))
    if action in TARGET and TARGET[action] not in LEGAL_TRANSITIONS[ticket.status]:
        raise NotAllowed(t(f"deny.state_{ticket.status.value}"))


# -- texts and sending -----------------------------------------------------------

def _tz(tz: ZoneInfo | None) -> ZoneInfo:
    return tz or get_settings().tz


def _local(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M") if at else t("card.no_due")


def status_name(status: TicketStatus) -> str:
    return t(f"status.{status.value}")


def _place(session: Session, ticket: Ticket) -> str:
    building = session.get(Building, ticket.building_id) if ticket.building_id else None
    landmark = session.get(Landmark, ticket.landmark_id) if ticket.landmark_id else None
    return (building.address if building else landmark.name if landmark else None) \
        or ticket.location_text or t("card.place_unknown")


def _reporter_masked(session: Session, ticket: Ticket) -> str:
    reporter = session.get(Person, ticket.reporter_id) if ticket.reporter_id else None
    if reporter is None or ticket.anonymous:
        return t("card.anonymous")
    return f"{mask_name(reporter.display_name)} {mask_phone(reporter.phone)}"


def card_payload(session: Session, ticket: Ticket, *, tz: ZoneInfo | None = None,
                 lead: str | None = None) -> dict[str, Any]:
    """The ticket card for the branch group: masked reporter, the handler buttons."""
    tz = _tz(tz)
    text = t("card.text", urgent=t("card.urgent") if ticket.urgent else "", number=ticket.number,
             status=status_name(ticket.status), category=ticket.category.name,
             place=_place(session, ticket), description=ticket.description,
             reporter=_reporter_masked(session, ticket),
             respond_due=_local(ticket.respond_due_at, tz), resolve_due=_local(ticket.resolve_due_at, tz))

    def button(action: str) -> dict[str, str]:
        return {"text": t(f"card.button_{action}"), "callback_data": f"t:{action}:{ticket.id}"}

    payload: dict[str, Any] = {
        "text": f"{lead}\n\n{text}" if lead else text,
        "buttons": [[button("claim"), button("resolve")], [button("escalate"), button("reject")],
                    [button("contact")]],
    }
    if ticket.photo_file_ids:
        payload["photo"] = ticket.photo_file_ids[0]
    return payload


def _rating_buttons(ticket: Ticket) -> list[list[dict[str, str]]]:
    return [[{"text": t(f"rating.{score}"), "callback_data": f"r:{ticket.id}:{score}"} for score in RATINGS]]


def _priority(ticket: Ticket) -> int | None:
    """An emergency's messages go before everything but nothing (core.messaging.outbox priorities)."""
    return PRIORITY_URGENT if ticket.urgent else None


def _tell_residents(session: Session, ticket: Ticket, event: TicketEvent, kind: str,
                    payload: dict[str, Any] | None = None) -> None:
    """The reporter and every follower with a Telegram id, once per event (default text: notify.<kind>)."""
    payload = payload or {"text": t(f"notify.{kind}", number=ticket.number)}
    ids = ([ticket.reporter_id] if ticket.reporter_id else []) + _follower_ids(session, ticket)
    for person_id in dict.fromkeys(ids):
        person = session.get(Person, person_id)
        if person is not None and person.telegram_id is not None:
            enqueue(session, dedupe_key=f"{kind}:{ticket.id}:{event.id}:{person.telegram_id}",
                    kind="notice", chat_id=person.telegram_id, payload=payload, priority=_priority(ticket))


def _tell_branch(session: Session, ticket: Ticket, event: TicketEvent, payload: dict[str, Any]) -> None:
    """A line about the ticket's progress in its branch's group, if it has one."""
    for chat_id in destinations.recipients(session, ticket, destinations.To.branch_group):
        enqueue(session, dedupe_key=f"branch:{ticket.id}:{event.id}", kind="line", chat_id=chat_id, payload=payload,
                priority=_priority(ticket))


def _tell_admins(session: Session, ticket: Ticket, event: TicketEvent, payload: dict[str, Any]) -> None:
    for chat_id in destinations.recipients(session, ticket, destinations.To.community_admins):
        enqueue(session, dedupe_key=f"admin:{ticket.id}:{event.id}:{chat_id}",
                kind="card", chat_id=chat_id, payload=payload, priority=_priority(ticket))


def _send_cards(session: Session, ticket: Ticket, event: TicketEvent, *, tz: ZoneInfo) -> None:
    """A new ticket's card to every destination core/tickets/destinations.py's table names for it."""
    for destination in destinations.for_new_ticket(destinations.situation(session, ticket)):
        card = card_payload(session, ticket, tz=tz, lead=t(destination.lead) if destination.lead else None)
        for chat_id in destinations.recipients(session, ticket, destination.to):
            enqueue(session, dedupe_key=f"{destination.to.value}:{ticket.id}:{event.id}:{chat_id}",
                    kind="card", chat_id=chat_id, payload=card, priority=_priority(ticket))


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
            _tell_residents(session, ticket, event, "received")
        return ticket
    if ticket.community_id is None:
        ticket.community_id = grid.community_id
    event = change_status(session, ticket, S.accepted, actor=None, now=now,
                          note=t("note.routed", grid=grid.name))
    _send_cards(session, ticket, event, tz=tz)
    if notify_reporter:
        _tell_residents(session, ticket, event, "accepted", {"text": t(
            "notify.accepted", number=ticket.number, grid=grid.name, due=_local(ticket.resolve_due_at, tz))})
    return ticket


def _move(session: Session, ticket_id: int, person: Person | None, action: str, note: str | None,
          now: datetime | None) -> tuple[Ticket, TicketEvent, Person]:
    ticket = _ticket(session, ticket_id, lock=True)
    check(session, person, action, ticket)
    assert person is not None  # check() refuses nobody
    if action in ("resolve", "reject") and not (note and note.strip()):
        raise NotAllowed(t(f"deny.note_{action}"))
    event = change_status(session, ticket, TARGET[action], actor=person,
                          note=note.strip() if note else None, now=now)
    return ticket, event, person


def claim(session: Session, ticket_id: int, person: Person | None, *, now: datetime | None = None) -> Ticket:
    ticket, event, person = _move(session, ticket_id, person, "claim", None, now)
    handler = first_name(person)
    _tell_residents(session, ticket, event, "claimed",
                    {"text": t("notify.claimed", number=ticket.number, handler=handler)})
    _tell_branch(session, ticket, event, {"text": t("line.claimed", number=ticket.number, handler=handler)})
    return ticket


def resolve(session: Session, ticket_id: int, person: Person | None, note: str,
            photo_file_id: str | None = None, *, now: datetime | None = None) -> Ticket:
    ticket, event, person = _move(session, ticket_id, person, "resolve", note, now)
    ticket.resolution_photo_id = photo_file_id
    payload: dict[str, Any] = {"text": t("notify.resolved", number=ticket.number, note=event.note),
                               "buttons": _rating_buttons(ticket)}
    if photo_file_id:
        payload["photo"] = photo_file_id
    _tell_residents(session, ticket, event, "resolved", payload)
    _tell_branch(session, ticket, event,
                 {"text": t("line.resolved", number=ticket.number, handler=first_name(person))})
    return ticket


def escalate(session: Session, ticket_id: int, person: Person | None, note: str | None = None, *,
             now: datetime | None = None, tz: ZoneInfo | None = None) -> Ticket:
    """吹哨: hand the ticket to the community; its admins get the card."""
    ticket, event, person = _move(session, ticket_id, person, "escalate", note, now)
    handler = first_name(person)
    lead = t("card.escalated", number=ticket.number, handler=handler, note=event.note or "")
    _tell_admins(session, ticket, event, card_payload(session, ticket, tz=tz, lead=lead))
    _tell_residents(session, ticket, event, "escalated")
    _tell_branch(session, ticket, event, {"text": t("line.escalated", number=ticket.number, handler=handler)})
    return ticket


def reject(session: Session, ticket_id: int, person: Person | None, reason: str, *,
           now: datetime | None = None) -> Ticket:
    """Not a grid matter: the residents get the reason and the 12345 referral."""
    ticket, event, person = _move(session, ticket_id, person, "reject", reason, now)
    _tell_residents(session, ticket, event, "rejected",
                    {"text": t("notify.rejected", number=ticket.number, reason=event.note)})
    _tell_branch(session, ticket, event, {"text": t(
        "line.rejected", number=ticket.number, handler=first_name(person), reason=event.note)})
    return ticket


def contact_details(session: Session, ticket_id: int, person: Person | None) -> str:
    """The reporter's full name and phone, for the secretary, grid worker or admin only.

    Every time they are shown, the audit log says who saw whose contact (ticket.contact);
    a refusal or an anonymous ticket shows nothing and records nothing.
    """
    ticket = _ticket(session, ticket_id)
    check(session, person, "contact", ticket)
    reporter = session.get(Person, ticket.reporter_id) if ticket.reporter_id else None
    if reporter is None or ticket.anonymous:
        return t("contact.anonymous", number=ticket.number)
    audit.record(session, person, "ticket.contact", f"ticket:{ticket.id}",
                 {"number": ticket.number, "reporter": f"person:{reporter.id}", "phone": bool(reporter.phone)})
    log.info("contact of ticket %s shown to person %s", ticket.number, person.id if person else None)
    return t("contact.details", number=ticket.number, name=reporter.display_name,
             phone=reporter.phone or t("card.no_phone"))


def rate(session: Session, ticket_id: int, person: Person | None, score: int, *,
         now: datetime | None = None, tz: ZoneInfo | None = None) -> Ticket:
    """3 满意 / 2 基本满意 close the ticket; 1 不满意 reopens it and puts the card back in the group."""
    if score not in RATINGS:
        raise ValueError(f"a rating is 1, 2 or 3, not {score!r}")
    now = now or utcnow()
    ticket = _ticket(session, ticket_id, lock=True)
    check(session, person, "rate", ticket)
    label = t(f"rating.{score}")
    event = change_status(session, ticket, RATINGS[score], actor=person, note=label, now=now)
    ticket.rating, ticket.rated_at = score, now
    if event.to_status is S.reopened:
        _tell_branch(session, ticket, event,
                     card_payload(session, ticket, tz=tz, lead=t("card.reopened", number=ticket.number)))
        _tell_residents(session, ticket, event, "reopened")
    else:
        _tell_branch(session, ticket, event, {"text": t("line.rated", number=ticket.number, rating=label)})
        _tell_residents(session, ticket, event, "closed")
    return ticket


def close_unrated(session: Session, now: datetime | None = None, days: int = 3) -> int:
    """Close resolved tickets the residents left unrated for `days`; how many were closed."""
    now = now or utcnow()
    resolved_at = (select(TicketEvent.ticket_id, func.max(TicketEvent.at).label("at"))
                   .where(TicketEvent.to_status == S.resolved).group_by(TicketEvent.ticket_id).subquery())
    stale = session.scalars(select(Ticket.id).join(resolved_at, resolved_at.c.ticket_id == Ticket.id)
                            .where(Ticket.status == S.resolved, resolved_at.c.at < now - timedelta(days=days))
                            .order_by(Ticket.id)).all()
    closed = 0
    for ticket_id in stale:
        ticket = _ticket(session, ticket_id, lock=True)
        if ticket.status is not S.resolved:  # rated (or reopened) meanwhile
            continue
        event = change_status(session, ticket, S.closed, actor=None, note=t("note.auto_closed"), now=now)
        _tell_residents(session, ticket, event, "closed")
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
    ticket = _ticket(session, ticket_id)
    if ticket.reporter_id != person.id and person.id not in _follower_ids(session, ticket):
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


def history_text(session: Session, ticket: Ticket, viewer: Person | None, *,
                 tz: ZoneInfo | None = None) -> str:
    """Every event of the ticket in local time; handlers by first name, residents unnamed."""
    tz = _tz(tz)
    residents = {ticket.reporter_id, *_follower_ids(session, ticket)}
    lines = [t("history.header", number=ticket.number, category=ticket.category.name,
               status=status_name(ticket.status))]
    for e in events_of(session, ticket):
        actor = session.get(Person, e.actor_id) if e.actor_id else None
        who = (t("actor.system") if actor is None else t("actor.you") if viewer and actor.id == viewer.id
               else t("actor.resident") if actor.id in residents else first_name(actor))
        lines.append(t("history.line_note" if e.note else "history.line", at=_local(e.at, tz),
                       status=status_name(e.to_status), actor=who, note=e.note))
    return "\n".join(lines)
