"""The three rates communities are judged on, and the figures beside them, from the event history.

Nothing here is a stored counter: every figure is read from tickets' limits as filed and their
events, for any period and any set of grids. docs/rates.md gives the definitions in words; in
short, for the period [start, end):

- 响应率 (response): of the tickets whose first response limit falls in the period, the share
  a handler acted on (claimed, resolved, escalated, or 退回: to the community or rejected by it) by that limit. An emergency's
  response limit is its dispatch limit (its resolve limit): the resident's advice is immediate.
- 办结率 (handler side): of the tickets whose first resolve limit falls in the period, the share
  resolved by it. A rejected ticket (not a grid matter) is not counted.
- 解决率: of the return visits' (回访) answers to 问题解决了吗 given in the period, the share 已解决.
- 满意率: of their answers to 您满意吗 given in the period, the share 满意 or 基本满意. The two
  questions are answered apart (core.tickets.visit: events of kind "visit"), so each rate has
  its own denominator. An answer of the old single question (a resolved → closed/reopened event
  whose note is 满意, 基本满意 or 不满意) gives both: 满意 and 基本满意 solved, 不满意 not.
- `answers` counts the visits answered (one answer or both) in the period.
- A duplicate is not counted at all (its original is), nor a ticket its reporter withdrew. A
  transferred ticket counts for the grid it is in now, with its limits as filed; a branch's 退回
  (to the community's triage queue) is a response, not an end (docs/rates.md). A reopened ticket counts once in 响应率 and 办结率 (its first limits) and each of
  its answers counts in 解决率 and 满意率, in the period it was given.
- Also: tickets filed (and per category), overdue marks, and the median minutes from filing to
  the first claim and to the first resolution, of the tickets filed in the period.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, any_, bindparam, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from core.messages import t
from core.models import Ticket, TicketEvent, TicketStatus
from core.tickets.visit import KIND as VISIT

S = TicketStatus
ACTED = (S.claimed, S.resolved, S.escalated, S.rejected, S.triage)
SCORES = {3: "satisfied", 2: "fair", 1: "unsatisfied"}
CHUNK = 900  # ticket ids per IN (…): under SQLite's 999 bound parameters


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class Figures:
    filed: int = 0
    response_due: int = 0
    responded_in_time: int = 0
    resolve_due: int = 0
    resolved_in_time: int = 0
    answers: int = 0  # visits with an answer in the period
    solved_answers: int = 0
    solved: int = 0
    satisfaction_answers: int = 0
    satisfied: int = 0
    overdue: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    claim_minutes: list[float] = field(default_factory=list)
    resolve_minutes: list[float] = field(default_factory=list)

    @property
    def response_rate(self) -> float | None:
        return _rate(self.responded_in_time, self.response_due)

    @property
    def resolve_rate(self) -> float | None:
        return _rate(self.resolved_in_time, self.resolve_due)

    @property
    def solved_rate(self) -> float | None:
        return _rate(self.solved, self.solved_answers)

    @property
    def satisfaction_rate(self) -> float | None:
        return _rate(self.satisfied, self.satisfaction_answers)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["claim_minutes"], data["resolve_minutes"]
        data["by_category"] = dict(sorted(self.by_category.items()))
        data.update(response_rate=self.response_rate, resolve_rate=self.resolve_rate,
                    solved_rate=self.solved_rate, satisfaction_rate=self.satisfaction_rate,
                    median_claim_minutes=_median(self.claim_minutes),
                    median_resolve_minutes=_median(self.resolve_minutes))
        return data


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _score(note: str | None) -> int | None:
    """The rating an answer of the old single question carries (its note is the answer's label;
    core.tickets.visit never writes a bare label as a status event's note)."""
    for score in SCORES:
        if note == t(f"rating.{score}"):
            return score
    return None


def _among(session: Session, ids: list[int]) -> Iterator[ColumnElement[bool]]:
    """`TicketEvent.ticket_id` among `ids`: one array parameter on PostgreSQL (planning an IN list of
    hundreds of parameters costs more than finding the rows), pages of CHUNK on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        yield TicketEvent.ticket_id == any_(bindparam("ticket_ids", ids, type_=postgresql.ARRAY(Integer)))
        return
    for chunk in range(0, len(ids), CHUNK):
        yield TicketEvent.ticket_id.in_(ids[chunk:chunk + CHUNK])


def figures(session: Session, start: datetime, end: datetime, grid_ids: Iterable[int] | None = None
            ) -> dict[int | None, Figures]:
    """Figures per grid (key: grid id; None for tickets without one) for [start, end), of the
    given grids (every grid when None)."""
    grids = list(grid_ids) if grid_ids is not None else None
    scope = [Ticket.status.not_in((S.duplicate, S.withdrawn))]
    if grids is not None:
        scope.append(Ticket.grid_id.in_(grids))
    out: dict[int | None, Figures] = {}

    def of(grid_id: int | None) -> Figures:
        if grid_id not in out:
            out[grid_id] = Figures()
        return out[grid_id]

    in_period = or_(Ticket.created_at.between(start, end), Ticket.first_respond_due_at.between(start, end),
                    Ticket.first_resolve_due_at.between(start, end))
    tickets = {row.id: row for row in session.execute(
        select(Ticket.id, Ticket.grid_id, Ticket.category_code, Ticket.urgent, Ticket.status, Ticket.created_at,
               Ticket.first_respond_due_at, Ticket.first_resolve_due_at).where(*scope, in_period))}
    acted: dict[int, datetime] = {}
    claimed: dict[int, datetime] = {}
    resolved: dict[int, datetime] = {}
    ids = sorted(tickets)
    for among in _among(session, ids):  # by ticket id: the events' ticket index
        for ticket_id, to_status, at in session.execute(
                select(TicketEvent.ticket_id, TicketEvent.to_status, TicketEvent.at)
                .where(among, TicketEvent.to_status.in_(ACTED),
                       TicketEvent.actor_id.is_not(None), TicketEvent.kind == "status",
                       TicketEvent.from_status != TicketEvent.to_status)):
            if ticket_id not in acted or at < acted[ticket_id]:
                acted[ticket_id] = at
            first = claimed if to_status is S.claimed else resolved if to_status is S.resolved else None
            if first is not None and (ticket_id not in first or at < first[ticket_id]):
                first[ticket_id] = at
    for row in tickets.values():
        fig = of(row.grid_id)
        if start <= row.created_at < end:
            fig.filed += 1
            fig.by_category[row.category_code] += 1
            if row.id in claimed:
                fig.claim_minutes.append((claimed[row.id] - row.created_at).total_seconds() / 60)
            if row.id in resolved:
                fig.resolve_minutes.append((resolved[row.id] - row.created_at).total_seconds() / 60)
        respond_limit = row.first_resolve_due_at if row.urgent else row.first_respond_due_at
        if respond_limit is not None and start <= respond_limit < end:
            fig.response_due += 1
            fig.responded_in_time += row.id in acted and acted[row.id] <= respond_limit
        limit = row.first_resolve_due_at
        if limit is not None and start <= limit < end and row.status is not S.rejected:
            fig.resolve_due += 1
            fig.resolved_in_time += row.id in resolved and resolved[row.id] <= limit
    visits: dict[int | None, set[tuple[int, str]]] = {}  # per grid: (ticket, which visit) answered
    in_time = (TicketEvent.actor_id.is_not(None), TicketEvent.at >= start, TicketEvent.at < end)
    old_answer = and_(TicketEvent.kind == "status", TicketEvent.from_status == S.resolved,
                      TicketEvent.to_status.in_((S.closed, S.reopened)), *in_time)
    for grid_id, ticket_id, event_id, note in session.execute(
            select(Ticket.grid_id, TicketEvent.ticket_id, TicketEvent.id, TicketEvent.note).select_from(TicketEvent)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id).where(*scope, old_answer)):
        score = _score(note)
        if score is None:  # a visit completed by core.tickets.visit: its answers are counted below
            continue
        fig = of(grid_id)
        fig.solved_answers += 1
        fig.solved += score >= 2
        fig.satisfaction_answers += 1
        fig.satisfied += score >= 2
        visits.setdefault(grid_id, set()).add((ticket_id, f"event {event_id}"))
    for grid_id, ticket_id, detail in session.execute(
            select(Ticket.grid_id, TicketEvent.ticket_id, TicketEvent.detail).select_from(TicketEvent)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id).where(*scope, TicketEvent.kind == VISIT, *in_time)):
        detail = detail or {}
        fig = of(grid_id)
        if detail.get("solved") is not None:
            fig.solved_answers += 1
            fig.solved += bool(detail["solved"])
        elif detail.get("score") is not None:
            fig.satisfaction_answers += 1
            fig.satisfied += int(detail["score"]) >= 2
        else:
            continue
        visits.setdefault(grid_id, set()).add((ticket_id, f"resolution {detail.get('resolution')}"))
    for grid_id, answered in visits.items():
        of(grid_id).answers = len(answered)
    for (grid_id,) in session.execute(select(Ticket.grid_id).select_from(TicketEvent)
                                      .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                                      .where(*scope, TicketEvent.kind == "overdue",
                                             TicketEvent.at >= start, TicketEvent.at < end)):
        of(grid_id).overdue += 1
    return out


def total(per_grid: dict[int | None, Figures]) -> Figures:
    """The figures of all the grids together (medians over every ticket, not of the grids' medians)."""
    out = Figures()
    for fig in per_grid.values():
        for name in ("filed", "response_due", "responded_in_time", "resolve_due", "resolved_in_time", "answers",
                     "solved_answers", "solved", "satisfaction_answers", "satisfied", "overdue"):
            setattr(out, name, getattr(out, name) + getattr(fig, name))
        out.by_category.update(fig.by_category)
        out.claim_minutes += fig.claim_minutes
        out.resolve_minutes += fig.resolve_minutes
    return out
