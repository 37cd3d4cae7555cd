"""Time limits that act (接诉即办): reminders before a ticket's limits, overdue and escalation after.

When a ticket is filed (and again when it is reopened, with fresh limits) its steps are
planned as rows of `ticket_deadlines`, each due at a point of the category's limits:

| step | due at | if still | who is told |
| --- | --- | --- | --- |
| respond_first, respond_second | the first and second fraction (default 50 %, 80 %) of the response limit | unclaimed | the branch group, in a digest; the grid workers, each privately |
| respond_overdue | the response limit | unclaimed | overdue; the community's admins get the card with 督办 |
| resolve_first | the first fraction of the resolve limit | unresolved | the claimer |
| resolve_second | the second fraction | unresolved | the claimer and the branch secretary |
| resolve_overdue | the resolve limit | unresolved | overdue; the admins, as above |
| emergency_recall | `emergency_recall` after filing (default 10 min) | unclaimed | the admins again |

The leader's round (core.scheduler) sweeps the rows that are due: each in its own transaction,
with the row locked and read afresh, so a step acts once however often it is swept, and one
that fails is tried again next round. A step whose condition no longer holds (the ticket was
claimed or resolved, or reopened into a newer round) is marked skipped. Every message is an
outbox row whose dedupe key names the step, so a step run twice still queues each message once.

A branch group hears at most one digest every `digest` (default 10 minutes, as a group that
buzzes all day is muted, and Telegram allows 20 messages a minute per group): reminders that
fall due in between wait for the next digest and are listed together.

Overdue is a flag (`Ticket.overdue_at`) and an event (the status stays, so the ticket stays
with its claimer); it is not a status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.config import Settings
from core.messages import t
from core.messaging.outbox import PRIORITY_URGENT, enqueue
from core.models import (
    Branch,
    DeadlineStep,
    OutboxMessage,
    Person,
    Role,
    RoleGrant,
    Ticket,
    TicketDeadline,
    TicketEvent,
    TicketStatus,
)
from core.presentation import callbacks
from core.presentation.cards import card_payload, local_time
from core.tickets import destinations

log = logging.getLogger("gridbot.deadlines")

D = DeadlineStep
S = TicketStatus
UNCLAIMED = frozenset({S.new, S.accepted, S.reopened})
UNRESOLVED = frozenset({S.new, S.accepted, S.claimed, S.escalated, S.reopened})
RESPOND_STEPS = frozenset({D.respond_first, D.respond_second, D.respond_overdue, D.emergency_recall})
REMINDERS = frozenset({D.respond_first, D.respond_second})  # the ones a branch group hears in a digest
DIGEST_KIND = "digest"


@dataclass(frozen=True)
class Limits:
    """How the steps are spaced: from the settings (deadline_fractions, digest_minutes, …)."""

    fractions: tuple[float, float] = (0.5, 0.8)
    digest: timedelta = timedelta(minutes=10)
    emergency_recall: timedelta = timedelta(minutes=10)

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.deadline_fractions, timedelta(minutes=settings.digest_minutes),
                   timedelta(minutes=settings.emergency_recall_minutes))


# -- planning ------------------------------------------------------------------------------


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(TicketDeadline).values(rows)
                    .on_conflict_do_nothing(index_elements=["ticket_id", "step", "round"]))


def plan(session: Session, ticket: Ticket, *, limits: Limits) -> int:
    """Plan the steps of the ticket's current round; how many (planning twice adds none).

    The round starts when its limits were set: at filing, or at the reopening that renewed them
    (core.tickets.lifecycle.renew_limits)."""
    assert ticket.respond_due_at is not None and ticket.resolve_due_at is not None
    category = ticket.category
    start = ticket.resolve_due_at - timedelta(minutes=category.resolve_minutes)
    first, second = limits.fractions
    respond, resolve = ticket.respond_due_at - start, ticket.resolve_due_at - start
    steps: list[tuple[DeadlineStep, datetime]] = []
    if ticket.urgent:
        steps.append((D.emergency_recall, start + limits.emergency_recall))
    else:
        steps += [(D.respond_first, start + respond * first), (D.respond_second, start + respond * second),
                  (D.respond_overdue, ticket.respond_due_at)]
    steps += [(D.resolve_first, start + resolve * first), (D.resolve_second, start + resolve * second),
              (D.resolve_overdue, ticket.resolve_due_at)]
    rows = [dict(ticket_id=ticket.id, step=step, round=ticket.deadline_round, due_at=at) for step, at in steps]
    _insert_ignore(session, rows)
    ticket.deadlines_pending = False
    return len(rows)


def pending(session: Session, limit: int = 500) -> list[int]:
    """Ids of tickets whose current round is not planned yet (filed or reopened since the last sweep)."""
    return list(session.scalars(select(Ticket.id).where(Ticket.deadlines_pending.is_(True))
                                .order_by(Ticket.id).limit(limit)))


def plan_one(session: Session, ticket_id: int, *, limits: Limits) -> int:
    ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if ticket is None or not ticket.deadlines_pending:
        return 0
    return plan(session, ticket, limits=limits)


# -- sweeping ------------------------------------------------------------------------------


def due(session: Session, now: datetime, *, after: tuple[datetime, int] | None = None,
        limit: int = 500) -> list[tuple[int, datetime]]:
    """(id, due_at) of the steps due and not yet done, soonest first, from after `after` (a page's last)."""
    query = select(TicketDeadline.id, TicketDeadline.due_at).where(
        TicketDeadline.done_at.is_(None), TicketDeadline.due_at <= now)
    if after is not None:
        at, last = after
        query = query.where(or_(TicketDeadline.due_at > at, and_(TicketDeadline.due_at == at, TicketDeadline.id > last)))
    rows = session.execute(query.order_by(TicketDeadline.due_at, TicketDeadline.id).limit(limit)).all()
    return [(row.id, row.due_at) for row in rows]


def next_due(session: Session) -> datetime | None:
    """When the soonest step not yet done falls due."""
    return session.scalar(select(func.min(TicketDeadline.due_at)).where(TicketDeadline.done_at.is_(None)))


def applies(step: TicketDeadline, ticket: Ticket) -> bool:
    if step.round != ticket.deadline_round:
        return False
    return ticket.status in (UNCLAIMED if step.step in RESPOND_STEPS else UNRESOLVED)


def group_of(session: Session, ticket: Ticket) -> int | None:
    branch = destinations.branch_of(session, ticket)
    return branch.telegram_chat_id if branch is not None else None


def digest_open(session: Session, chat_id: int, now: datetime, limits: Limits) -> bool:
    """May the group hear a digest now (none in the last `limits.digest`)?"""
    last = session.scalar(select(func.max(OutboxMessage.created_at)).where(
        OutboxMessage.chat_id == chat_id, OutboxMessage.kind == DIGEST_KIND))
    return last is None or last <= now - limits.digest


def run(session: Session, step_id: int, *, now: datetime, tz: ZoneInfo, limits: Limits) -> str:
    """Do one due step in the caller's transaction: "sent", "skipped", "waiting" (its group's
    digest is not open yet) or "done" (another sweep did it first)."""
    step = session.get(TicketDeadline, step_id, with_for_update=True, populate_existing=True)
    if step is None or step.done_at is not None:
        return "done"
    ticket = session.get(Ticket, step.ticket_id, with_for_update=True, populate_existing=True)
    assert ticket is not None
    if not applies(step, ticket):
        outcome = "skipped"
    elif step.step in REMINDERS and (chat := group_of(session, ticket)) is not None:
        if not digest_open(session, chat, now, limits):
            return "waiting"
        _digest(session, chat, now=now, tz=tz)
        return "sent"
    else:
        _act(session, step, ticket, now=now, tz=tz)
        outcome = "sent"
    step.done_at, step.outcome = now, outcome
    session.flush()
    return outcome


def _people(session: Session, role: Role, **scope: int | None) -> list[Person]:
    where = [RoleGrant.role == role, Person.telegram_id.is_not(None)]
    where += [getattr(RoleGrant, column) == value for column, value in scope.items()]
    return list(session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id)
                                .where(*where).order_by(Person.id).distinct()))


def _tell(session: Session, step: TicketDeadline, person: Person | None, payload: dict[str, Any],
          priority: int | None = None) -> None:
    if person is not None and person.telegram_id is not None:
        enqueue(session, dedupe_key=f"deadline:{step.id}:{person.telegram_id}", kind="notice",
                chat_id=person.telegram_id, payload=payload, priority=priority)


def _texts(ticket: Ticket, tz: ZoneInfo) -> dict[str, Any]:
    return dict(number=ticket.number, category=ticket.category.name,
                respond_due=local_time(ticket.respond_due_at, tz), resolve_due=local_time(ticket.resolve_due_at, tz))


def _act(session: Session, step: TicketDeadline, ticket: Ticket, *, now: datetime, tz: ZoneInfo) -> None:
    texts = _texts(ticket, tz)
    if step.step in REMINDERS:  # no branch group: the grid workers, privately
        for worker in _people(session, Role.grid_worker, grid_id=ticket.grid_id):
            _tell(session, step, worker, {"text": t("deadline.respond_reminder", **texts)})
    elif step.step in (D.resolve_first, D.resolve_second):
        claimer = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
        _tell(session, step, claimer, {"text": t("deadline.resolve_reminder", **texts)})
        if step.step is D.resolve_second:
            branch = destinations.branch_of(session, ticket)
            secretary = session.get(Person, branch.secretary_id) if branch and branch.secretary_id else None
            if secretary is not None and secretary is not claimer:
                _tell(session, step, secretary, {"text": t("deadline.resolve_reminder_secretary", **texts,
                                                           claimer=claimer.display_name if claimer else "")})
    elif step.step is D.emergency_recall:
        card = card_payload(session, ticket, tz=tz, lead=t("deadline.emergency_recall", number=ticket.number))
        card["buttons"] = escalation_buttons(ticket)
        for chat_id in destinations.recipients(session, ticket, destinations.To.community_admins):
            enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="card", chat_id=chat_id,
                    payload=card, priority=PRIORITY_URGENT)
    else:
        mark_overdue(session, step, ticket, now=now, tz=tz)


def escalation_buttons(ticket: Ticket) -> list[list[dict[str, str]]]:
    return [[{"text": t("deadline.button_urge"), "callback_data": callbacks.ticket_action("urge", ticket.id)},
             {"text": t("card.button_contact"), "callback_data": callbacks.ticket_action("contact", ticket.id)}]]


def mark_overdue(session: Session, step: TicketDeadline, ticket: Ticket, *, now: datetime, tz: ZoneInfo) -> None:
    """已超期: the flag, an event (the status stays), the card to the community's admins, a line to the branch."""
    which = "respond" if step.step is D.respond_overdue else "resolve"
    if ticket.overdue_at is None:
        ticket.overdue_at = now
    event = TicketEvent(ticket_id=ticket.id, actor_id=None, at=now, from_status=ticket.status,
                        to_status=ticket.status, note=t(f"deadline.overdue_{which}"))
    session.add(event)
    session.flush()
    card = card_payload(session, ticket, tz=tz, lead=t(f"deadline.escalated_{which}", number=ticket.number))
    card["buttons"] = escalation_buttons(ticket)
    priority = PRIORITY_URGENT if ticket.urgent else None
    admins = destinations.recipients(session, ticket, destinations.To.community_admins)
    if not admins and ticket.community_id is None:
        admins = destinations.recipients(session, ticket, destinations.To.every_admin)
    for chat_id in admins:
        enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="card", chat_id=chat_id,
                payload=card, priority=priority)
    for chat_id in destinations.recipients(session, ticket, destinations.To.branch_group):
        enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="line", chat_id=chat_id,
                payload={"text": t(f"deadline.overdue_line_{which}", number=ticket.number)}, priority=priority)


def _digest(session: Session, chat_id: int, *, now: datetime, tz: ZoneInfo) -> None:
    """One message to the group listing every due reminder of its tickets; those steps are done."""
    rows = session.execute(
        select(TicketDeadline, Ticket).join(Ticket, Ticket.id == TicketDeadline.ticket_id)
        .join(Branch, Branch.grid_id == Ticket.grid_id)
        .where(Branch.telegram_chat_id == chat_id, TicketDeadline.done_at.is_(None),
               TicketDeadline.due_at <= now, TicketDeadline.step.in_(REMINDERS))
        .order_by(Ticket.respond_due_at, Ticket.id)).all()
    lines, listed = [], set()
    for step, ticket in rows:
        if applies(step, ticket):
            if ticket.id not in listed:
                listed.add(ticket.id)
                lines.append(t("deadline.digest_line", **_texts(ticket, tz)))
            for worker in _people(session, Role.grid_worker, grid_id=ticket.grid_id):
                _tell(session, step, worker, {"text": t("deadline.respond_reminder", **_texts(ticket, tz))})
            step.outcome = "sent"
        else:
            step.outcome = "skipped"
        step.done_at = now
    if lines:
        enqueue(session, dedupe_key=f"digest:{chat_id}:{now.isoformat(timespec='seconds')}", kind=DIGEST_KIND,
                chat_id=chat_id, payload={"text": t("deadline.digest", count=len(lines), lines="\n".join(lines))})
    session.flush()


def urge(session: Session, ticket: Ticket, admin: Person, *, now: datetime, window: timedelta = timedelta(minutes=1)
         ) -> bool:
    """督办: a recorded nudge to the branch and the claimer; pressed again within `window`, it counts once."""
    note = t("deadline.urged_note")
    recent = session.scalar(select(TicketEvent.id).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.note == note, TicketEvent.at > now - window))
    if recent is not None:
        return False
    event = TicketEvent(ticket_id=ticket.id, actor_id=admin.id, at=now, from_status=ticket.status,
                        to_status=ticket.status, note=note)
    session.add(event)
    session.flush()
    text = t("deadline.urged", number=ticket.number, admin=admin.display_name)
    for chat_id in destinations.recipients(session, ticket, destinations.To.branch_group):
        enqueue(session, dedupe_key=f"urge:{event.id}:{chat_id}", kind="line", chat_id=chat_id, payload={"text": text})
    claimer = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    if claimer is not None and claimer.telegram_id is not None:
        enqueue(session, dedupe_key=f"urge:{event.id}:{claimer.telegram_id}", kind="notice",
                chat_id=claimer.telegram_id, payload={"text": text})
    return True
