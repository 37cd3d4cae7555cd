"""Time limits that act (接诉即办): reminders before a ticket's limits, overdue and escalation after.

When a ticket is filed (and again when it is reopened, with fresh limits) its steps are
planned as rows of `ticket_deadlines`, each due at a point of the category's limits:

| step | due at | if still | who is told |
| --- | --- | --- | --- |
| respond_first, respond_second | the first and second fraction (default 50 %, 80 %) of the response limit | unclaimed | the branch group, in a digest; the grid workers, each privately |
| respond_overdue | the response limit | unclaimed | overdue; the community's admins get the card with 督办 改派 接手 |
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
buzzes all day is muted, and Telegram allows 20 messages a minute per group): a reminder reaches
the grid workers when it falls due and waits for the group's next digest, where it is listed
with the others (and dropped if the ticket was claimed meanwhile).

Overdue is a flag (`Ticket.overdue_at`) and an event (the status stays, so the ticket stays
with its claimer); it is not a status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
    Category,
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
UNRESOLVED = frozenset({S.new, S.accepted, S.claimed, S.escalated, S.triage, S.reopened})
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


def plan(session: Session, ticket: Ticket, *, limits: Limits, start: datetime | None = None) -> int:
    """Plan the steps of the ticket's current round; how many (planning twice adds none).

    The round starts when its limits were set: at filing, or at the reopening that renewed them
    (core.tickets.lifecycle.renew_limits)."""
    assert ticket.respond_due_at is not None and ticket.resolve_due_at is not None
    if start is None:
        start = ticket.resolve_due_at - timedelta(minutes=ticket.category.resolve_minutes)
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


@dataclass
class Pass:
    """One sweep's settings and what it has looked up already (grid workers, branch groups)."""

    now: datetime
    tz: ZoneInfo
    limits: Limits
    workers: dict[int, list[Person]] = field(default_factory=dict)
    groups: dict[int, int | None] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    admins: dict[int | None, list[int]] = field(default_factory=dict)

    def admins_of(self, session: Session, ticket: Ticket) -> list[int]:
        """The chats of the ticket's community admins (every admin's, for a ticket of no community)."""
        if ticket.community_id not in self.admins:
            to = destinations.To.community_admins if ticket.community_id is not None else destinations.To.every_admin
            self.admins[ticket.community_id] = destinations.recipients(session, ticket, to)
        return self.admins[ticket.community_id]

    def texts(self, session: Session, ticket: Ticket) -> dict[str, Any]:
        """What the reminders say of a ticket: number, category, both limits in local time."""
        if ticket.category_code not in self.categories:
            category = session.get(Category, ticket.category_code)
            self.categories[ticket.category_code] = category.name if category is not None else ticket.category_code
        return dict(number=ticket.number, category=self.categories[ticket.category_code],
                    respond_due=local_time(ticket.respond_due_at, self.tz),
                    resolve_due=local_time(ticket.resolve_due_at, self.tz))

    def forget(self) -> None:
        """Drop what was looked up (after a rollback its rows may be stale)."""
        self.workers.clear()
        self.groups.clear()
        self.categories.clear()
        self.admins.clear()

    def workers_of(self, session: Session, grid_id: int | None) -> list[Person]:
        if grid_id is None:
            return []
        if grid_id not in self.workers:
            self.workers[grid_id] = _people(session, Role.grid_worker, grid_id=grid_id)
        return self.workers[grid_id]

    def group_of(self, session: Session, ticket: Ticket) -> int | None:
        if ticket.grid_id is None:
            return None
        if ticket.grid_id not in self.groups:
            branch = destinations.branch_of(session, ticket)
            self.groups[ticket.grid_id] = branch.telegram_chat_id if branch is not None else None
        return self.groups[ticket.grid_id]


def run(session: Session, step_ids: list[int], sweep: Pass) -> list[str]:
    """Do due steps in the caller's transaction, each "sent", "skipped", or "done" (done already),
    their rows and tickets locked and read afresh in one query.

    A reminder of a ticket whose branch has a group reaches the grid workers at once and is
    left for the group's next digest (`digest`)."""
    rows = session.execute(
        select(TicketDeadline, Ticket).join(Ticket, Ticket.id == TicketDeadline.ticket_id)
        .where(TicketDeadline.id.in_(step_ids)).order_by(TicketDeadline.due_at, TicketDeadline.id)
        .with_for_update().execution_options(populate_existing=True)).all()
    return [_run_one(session, step, ticket, sweep) for step, ticket in rows] + ["done"] * (len(step_ids) - len(rows))


def _run_one(session: Session, step: TicketDeadline, ticket: Ticket, sweep: Pass) -> str:
    if step.done_at is not None:
        return "done"
    if applies(step, ticket):
        _act(session, step, ticket, sweep)
        step.digest_pending = step.step in REMINDERS and sweep.group_of(session, ticket) is not None
        outcome = "sent"
    else:
        outcome = "skipped"
    step.done_at, step.outcome = sweep.now, outcome
    return outcome


def digest_open(session: Session, chat_id: int, now: datetime, limits: Limits) -> bool:
    """May the group hear a digest now (none in the last `limits.digest`)?"""
    last = session.scalar(select(func.max(OutboxMessage.created_at)).where(
        OutboxMessage.chat_id == chat_id, OutboxMessage.kind == DIGEST_KIND))
    return last is None or last <= now - limits.digest


def digest_chats(session: Session) -> list[int]:
    """The branch groups with reminders waiting for a digest."""
    return list(session.scalars(
        select(Branch.telegram_chat_id).distinct()
        .join(Ticket, Ticket.grid_id == Branch.grid_id)
        .join(TicketDeadline, TicketDeadline.ticket_id == Ticket.id)
        .where(TicketDeadline.digest_pending.is_(True), Branch.telegram_chat_id.is_not(None))))


def digest(session: Session, chat_id: int, sweep: Pass) -> int:
    """If the group's window is open: one message listing its waiting reminders (tickets still
    unclaimed); how many tickets it listed (0: nothing sent)."""
    if not digest_open(session, chat_id, sweep.now, sweep.limits):
        return 0
    rows = session.execute(
        select(TicketDeadline, Ticket).join(Ticket, Ticket.id == TicketDeadline.ticket_id)
        .join(Branch, Branch.grid_id == Ticket.grid_id)
        .where(Branch.telegram_chat_id == chat_id, TicketDeadline.digest_pending.is_(True))
        .order_by(Ticket.respond_due_at, Ticket.id).with_for_update(of=TicketDeadline)).all()
    lines, listed = [], set()
    for step, ticket in rows:
        step.digest_pending = False
        if applies(step, ticket) and ticket.id not in listed:
            listed.add(ticket.id)
            lines.append(t("deadline.digest_line", **sweep.texts(session, ticket)))
    if lines:
        enqueue(session, dedupe_key=f"digest:{chat_id}:{sweep.now.isoformat(timespec='seconds')}", kind=DIGEST_KIND,
                chat_id=chat_id, payload={"text": t("deadline.digest", count=len(lines), lines="\n".join(lines))})
    return len(lines)


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


def _act(session: Session, step: TicketDeadline, ticket: Ticket, sweep: Pass) -> None:
    texts = sweep.texts(session, ticket)
    if step.step in REMINDERS:  # the grid workers, privately (the group hears it in a digest)
        for worker in sweep.workers_of(session, ticket.grid_id):
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
        card = card_payload(session, ticket, tz=sweep.tz, lead=t("deadline.emergency_recall", number=ticket.number))
        card["buttons"] = escalation_buttons(ticket)
        for chat_id in destinations.recipients(session, ticket, destinations.To.community_admins):
            enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="card", chat_id=chat_id,
                    payload=card, priority=PRIORITY_URGENT)
    else:
        mark_overdue(session, step, ticket, sweep)


def escalation_buttons(ticket: Ticket) -> list[list[dict[str, str]]]:
    def button(text: str, action: str) -> dict[str, str]:
        return {"text": t(text), "callback_data": callbacks.ticket_action(action, ticket.id)}

    return [[button("deadline.button_urge", "urge"), button("card.button_transfer", "transfer"),
             button("card.button_take", "take")],
            [button("card.button_contact", "contact"), button("card.button_merge", "merge")]]


def mark_overdue(session: Session, step: TicketDeadline, ticket: Ticket, sweep: Pass) -> None:
    """已超期: the flag, an event (the status stays), the card to the community's admins, a line to the branch."""
    which = "respond" if step.step is D.respond_overdue else "resolve"
    if ticket.overdue_at is None:
        ticket.overdue_at = sweep.now
    session.add(TicketEvent(ticket_id=ticket.id, actor_id=None, at=sweep.now, from_status=ticket.status,
                            to_status=ticket.status, note=t(f"deadline.overdue_{which}"), kind="overdue"))
    card = card_payload(session, ticket, tz=sweep.tz, lead=t(f"deadline.escalated_{which}", number=ticket.number))
    card["buttons"] = escalation_buttons(ticket)
    priority = PRIORITY_URGENT if ticket.urgent else None
    admins = sweep.admins_of(session, ticket)
    if ticket.urgent and step.step is D.resolve_overdue:  # an emergency not dispatched in time: the street too
        admins = admins + destinations.recipients(session, ticket, destinations.To.street_admins)
    for chat_id in dict.fromkeys(admins):
        enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="card", chat_id=chat_id,
                payload=card, priority=priority)
    group = sweep.group_of(session, ticket)
    for chat_id in [group] if group is not None else []:
        enqueue(session, dedupe_key=f"deadline:{step.id}:{chat_id}", kind="line", chat_id=chat_id,
                payload={"text": t(f"deadline.overdue_line_{which}", number=ticket.number)}, priority=priority)


def urge(session: Session, ticket: Ticket, admin: Person, *, now: datetime, window: timedelta = timedelta(minutes=1)
         ) -> bool:
    """督办: a recorded nudge to the branch and the claimer; pressed again within `window`, it counts once."""
    note = t("deadline.urged_note")
    recent = session.scalar(select(TicketEvent.id).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.note == note, TicketEvent.at > now - window))
    if recent is not None:
        return False
    event = TicketEvent(ticket_id=ticket.id, actor_id=admin.id, at=now, from_status=ticket.status,
                        to_status=ticket.status, note=note, kind="urge")
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
