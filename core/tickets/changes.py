"""What a ticket's reporter may change after filing it, each change a TicketEvent.

- 撤回 (withdraw): before anyone claimed it (new, accepted) the ticket moves to `withdrawn`
  through core.tickets.lifecycle.change_status; whoever got its card is told.
- 补充 (supplement): text and/or a photo, at any time; an event of kind "supplement" that
  leaves the status as it was (from = to); the photo joins the ticket's photos. The handler
  is told: the claimer in private once someone claimed it, else whoever got the card.
- 更正类别 (category): before anyone claimed it; the time limits follow the new category; an
  event of kind "category" with {"from", "to"}; the card goes out again with the new category.
- A follow-up in words ("电梯还是不动啊，你们根本没修") finds the reporter's own open ticket of
  that category, or one closed within FOLLOW_UP_DAYS when the words say it is not over
  (`followup_target`), and becomes a supplement of it instead of a new report.

Only the reporter may make these changes (not followers, not handlers). Every function works
in the caller's transaction, locks the ticket's row and checks afresh, and never commits;
refusals are core.access.permissions.NotAllowed with a Chinese reason. Notices are outbox rows keyed
by the event, so a retried call never queues one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import (
    Category,
    CategoryKind,
    Person,
    Ticket,
    TicketDeadline,
    TicketEvent,
    TicketFollower,
    TicketStatus,
    utcnow,
)
from core.presentation import cards
from core.tickets import destinations
from core.tickets.lifecycle import change_status
from core.tickets.service import OPEN

S = TicketStatus
STATUS, SUPPLEMENT, CATEGORY = "status", "supplement", "category"  # TicketEvent.kind
BEFORE_CLAIM = frozenset({S.new, S.accepted})  # withdraw and correct the category only then
FOLLOW_UP_DAYS = 7  # a closed ticket takes follow-ups this long after it closed
# Words that say a problem is still there or back (checked on a closed ticket only; an open
# one takes any message of its category from its reporter).
STILL_THERE = ("还是", "还没", "仍然", "依然", "根本没", "没修", "没人修", "没人管", "没人来", "没解决",
               "没处理", "没弄好", "怎么还", "又坏", "又不", "又被", "又有", "又开始", "一直")


def _own(session: Session, ticket_id: int, person: Person | None) -> Ticket:
    """The ticket, its row locked and read afresh; NotAllowed unless `person` reported it."""
    ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if ticket is None:
        raise NotAllowed(t("ticket.not_found"))
    if person is None or ticket.reporter_id != person.id:
        raise NotAllowed(t("change.not_yours"))
    return ticket


def _event(session: Session, ticket: Ticket, person: Person, kind: str, note: str | None,
           detail: dict[str, Any] | None, now: datetime) -> TicketEvent:
    """A change that is not a move: from = to = the ticket's status."""
    event = TicketEvent(ticket_id=ticket.id, actor_id=person.id, at=now, from_status=ticket.status,
                        to_status=ticket.status, note=note, kind=kind, detail=detail)
    ticket.updated_at = now
    session.add(event)
    session.flush()
    return event


def _card_chats(session: Session, ticket: Ticket) -> list[int]:
    """Every chat that got the ticket's card (core.tickets.destinations), plus the community's admins
    once it was escalated to them."""
    chats: list[int] = []
    for destination in destinations.for_new_ticket(destinations.situation(session, ticket)):
        chats += destinations.recipients(session, ticket, destination.to)
    if ticket.status is S.escalated:
        chats += destinations.recipients(session, ticket, destinations.To.community_admins)
    return list(dict.fromkeys(chats))


def handler_chats(session: Session, ticket: Ticket) -> list[int]:
    """Who handles the ticket now: its claimer (privately) once claimed, else the card's chats;
    for a ticket no longer open (closed, say) the card's chats too: the branch decides again."""
    chats: list[int] = []
    if ticket.claimed_by_id is not None:
        claimer = session.get(Person, ticket.claimed_by_id)
        if claimer is not None and claimer.telegram_id is not None:
            chats.append(claimer.telegram_id)
    if not chats or ticket.status not in OPEN:
        chats += _card_chats(session, ticket)
    return list(dict.fromkeys(chats))


def _tell(session: Session, ticket: Ticket, event: TicketEvent, chats: list[int], payload: dict[str, Any]) -> None:
    for chat_id in chats:
        enqueue(session, dedupe_key=f"change:{event.kind}:{ticket.id}:{event.id}:{chat_id}", kind="line",
                chat_id=chat_id, payload=payload)


# -- the changes ------------------------------------------------------------------------------

def withdraw(session: Session, ticket_id: int, person: Person | None, *, now: datetime | None = None) -> Ticket:
    """撤回: the reporter takes the ticket back before anyone claimed it."""
    ticket = _own(session, ticket_id, person)
    assert person is not None
    if ticket.status not in BEFORE_CLAIM:
        raise NotAllowed(t("change.withdraw_too_late", number=ticket.number, status=cards.status_name(ticket.status)))
    event = change_status(session, ticket, S.withdrawn, actor=person, note=t("note.withdrawn"), now=now or utcnow())
    _tell(session, ticket, event, _card_chats(session, ticket), {"text": t("line.withdrawn", number=ticket.number)})
    followers = select(TicketFollower.person_id).where(TicketFollower.ticket_id == ticket.id).order_by(TicketFollower.id)
    for follower_id in session.scalars(followers):
        follower = session.get(Person, follower_id)
        if follower is not None and follower.telegram_id is not None:
            enqueue(session, dedupe_key=f"withdrawn:{ticket.id}:{event.id}:{follower.telegram_id}", kind="notice",
                    chat_id=follower.telegram_id, payload={"text": t("notify.withdrawn", number=ticket.number)})
    return ticket


def supplement(session: Session, ticket_id: int, person: Person | None, text: str | None,
               photo: str | None = None, *, key: str | None = None, now: datetime | None = None) -> TicketEvent:
    """补充: words and/or a photo added to the reporter's ticket at any time; the handler is told.

    `key`: the message's submission key ("<sender>:<inbox id>"); the same message again (a retry
    after a crash) finds the event it made and adds nothing.
    """
    text = (text or "").strip() or None
    if text is None and not photo:
        raise NotAllowed(t("change.supplement_empty"))
    ticket = _own(session, ticket_id, person)
    assert person is not None
    if key is not None:
        for earlier in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                                 TicketEvent.kind == SUPPLEMENT)):
            if (earlier.detail or {}).get("key") == key:
                return earlier
    detail = {k: v for k, v in (("photo", photo), ("key", key)) if v} or None
    event = _event(session, ticket, person, SUPPLEMENT, text, detail, now or utcnow())
    if photo and photo not in (ticket.photo_file_ids or []):
        ticket.photo_file_ids = [*(ticket.photo_file_ids or []), photo]  # a new list: JSON columns see assignment
    words = text or t("change.photo_only")
    payload: dict[str, Any] = {"text": t("line.supplement", number=ticket.number, status=cards.status_name(ticket.status),
                                         text=words)}
    if photo:
        payload["photo"] = photo
    _tell(session, ticket, event, handler_chats(session, ticket), payload)
    return event


def recategorise(session: Session, ticket_id: int, person: Person | None, category_code: str, *,
                 tz: ZoneInfo, now: datetime | None = None) -> TicketEvent:
    """更正类别 before anyone claimed it: the due times follow the new category's limits."""
    ticket = _own(session, ticket_id, person)
    assert person is not None
    if ticket.status not in BEFORE_CLAIM:
        raise NotAllowed(t("change.category_too_late", number=ticket.number, status=cards.status_name(ticket.status)))
    category = session.get(Category, category_code)
    if category is None or not category.active or category.kind is CategoryKind.emergency or ticket.urgent:
        raise NotAllowed(t("change.category_not_possible"))
    old = ticket.category
    if old.code == category.code:
        raise NotAllowed(t("change.category_same", category=category.name))
    now = now or utcnow()
    ticket.category_code, ticket.category = category.code, category
    _limits_of_category(session, ticket, category, now)
    event = _event(session, ticket, person, CATEGORY, t("note.recategorised", old=old.name, new=category.name),
                   {"from": old.code, "to": category.code}, now)
    card = cards.card_payload(session, ticket, tz=tz, lead=t("card.recategorised", number=ticket.number, old=old.name,
                                                          new=category.name))
    _tell(session, ticket, event, _card_chats(session, ticket), card)
    return event


def _limits_of_category(session: Session, ticket: Ticket, category: Category, now: datetime) -> None:
    """The new category's time limits, counted from the filing; the deadline steps planned for the
    old ones are skipped and a new round is planned (core.tickets.deadlines, as on reopening)."""
    ticket.respond_due_at = ticket.created_at + timedelta(minutes=category.respond_minutes)
    ticket.resolve_due_at = ticket.created_at + timedelta(minutes=category.resolve_minutes)
    ticket.overdue_at = None  # the sweep marks it again at once if the new limits have passed too
    session.execute(update(TicketDeadline).where(TicketDeadline.ticket_id == ticket.id, TicketDeadline.done_at.is_(None))
                    .values(done_at=now, outcome="skipped"))
    ticket.deadline_round += 1
    ticket.deadlines_pending = True
    session.flush()


# -- which of the reporter's tickets ----------------------------------------------------------

def own(session: Session, ticket_id: int, person: Person | None) -> Ticket:
    """The ticket if `person` reported it, else NotAllowed (a read: no lock)."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotAllowed(t("ticket.not_found"))
    if person is None or ticket.reporter_id != person.id:
        raise NotAllowed(t("change.not_yours"))
    return ticket


def other_categories(session: Session, ticket: Ticket) -> list[tuple[str, str]]:
    """(code, name) of the categories the ticket may be corrected to: active, no emergency, not its own."""
    query = select(Category).where(Category.active.is_(True)).order_by(Category.code)
    return [(c.code, c.name) for c in session.scalars(query)
            if c.kind is not CategoryKind.emergency and c.code != ticket.category_code]


def changeable(session: Session, person: Person, what: str, *, now: datetime | None = None,
               limit: int = 5) -> list[Ticket]:
    """The reporter's tickets `what` ("withdraw", "category", "supplement") applies to, newest first.

    A supplement goes to any ticket not yet finished, or closed within FOLLOW_UP_DAYS.
    """
    query = select(Ticket).where(Ticket.reporter_id == person.id).order_by(Ticket.created_at.desc(), Ticket.id.desc())
    if what == "withdraw":
        return list(session.scalars(query.where(Ticket.status.in_(BEFORE_CLAIM)).limit(limit)))
    if what == "category":  # an urgent ticket keeps its category: it is handled at once
        return list(session.scalars(query.where(Ticket.status.in_(BEFORE_CLAIM), Ticket.urgent.is_(False))
                                    .limit(limit)))
    if what != "supplement":
        raise ValueError(f"unknown change {what!r}")
    since = (now or utcnow()) - timedelta(days=FOLLOW_UP_DAYS)
    return [x for x in session.scalars(query.limit(50))
            if x.status in OPEN or (x.status is S.closed and _closed_since(session, x, since))][:limit]


def _closed_since(session: Session, ticket: Ticket, since: datetime) -> bool:
    """Did the ticket close at or after `since` (by its closing event, not its last touch)?"""
    closed_at = session.scalar(select(func.max(TicketEvent.at)).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.to_status == S.closed, TicketEvent.kind == STATUS))
    return closed_at is not None and closed_at >= since


def still_there(text: str) -> bool:
    return any(word in text for word in STILL_THERE)


def followup_target(session: Session, person: Person | None, category_code: str, text: str, *,
                    building_id: int | None = None, now: datetime | None = None) -> Ticket | None:
    """The reporter's own ticket a complaint of `category_code` follows up, or None (a new report).

    Her newest open ticket of that category (in `building_id` when the message names one); else,
    when the words say the problem is still there, her newest one of that category closed within
    FOLLOW_UP_DAYS.
    """
    if person is None:
        return None
    since = (now or utcnow()) - timedelta(days=FOLLOW_UP_DAYS)
    query = (select(Ticket).where(Ticket.reporter_id == person.id, Ticket.category_code == category_code)
             .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(20))
    if building_id is not None:
        query = query.where((Ticket.building_id == building_id) | Ticket.building_id.is_(None))
    mine = list(session.scalars(query))
    open_ = [x for x in mine if x.status in OPEN]
    if open_:
        return open_[0]
    if still_there(text):
        closed = [x for x in mine if x.status is S.closed and _closed_since(session, x, since)]
        return closed[0] if closed else None
    return None
