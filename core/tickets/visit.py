"""The return visit (回访): after each resolution its residents are asked two questions at once,
问题解决了吗 (已解决 / 未解决) and 您对处理满意吗 (满意 / 基本满意 / 不满意), as Beijing's 接诉即办
measures 解决率 and 满意率 apart.

Each answer is an append-only TicketEvent of kind "visit" (detail {"solved": bool} or
{"score": 3|2|1}, with the id of the resolution it answers), and sets Ticket.solved or
Ticket.rating. What the answers do:
- 未解决 reopens the ticket at once (fresh limits, the card back to the branch group), whatever
  the satisfaction; the satisfaction may still be given afterwards, until the ticket is resolved
  again.
- 已解决 and a satisfaction, both in, close the ticket, whatever the satisfaction (不满意 on its own
  no longer reopens).
- Half an answer waits for the other half; core.tickets.service.close_unrated closes a resolved
  ticket after three days, keeping the half it has.
A new resolution (core.tickets.service.resolve) clears both: the visit is asked afresh.
Who may answer is core.access.tickets ("rate": the reporter and followers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.access.tickets import check
from core.messages import t
from core.models import Person, Ticket, TicketEvent, TicketStatus, utcnow
from core.presentation.cards import VISIT_QUESTIONS, card_payload
from core.tickets.lifecycle import change_status
from core.tickets.service import tell_branch, tell_residents, ticket_for_change

S = TicketStatus
KIND = "visit"
SCORES = (3, 2, 1)  # 满意, 基本满意, 不满意
FINISHED = (S.closed, S.rejected, S.duplicate, S.withdrawn)


@dataclass(frozen=True)
class Answered:
    ticket: Ticket
    missing: tuple[str, ...]  # the questions of this visit still unanswered ("solved", "score")
    reopened: bool  # this answer was 未解决: the ticket went back to the branch
    closed: bool  # this answer completed a solved visit: the ticket is closed


def missing(ticket: Ticket) -> tuple[str, ...]:
    """The questions the ticket's current visit still takes: both while it is resolved and
    unanswered; after 未解决 reopened it, the satisfaction until it is resolved again."""
    if ticket.status is S.resolved:
        return tuple(q for q in VISIT_QUESTIONS if (ticket.solved if q == "solved" else ticket.rating) is None)
    if ticket.solved is False and ticket.rating is None and ticket.status not in FINISHED:
        return ("score",)
    return ()


def label(solved: bool | None = None, score: int | None = None) -> str:
    """An answer as the resident pressed it: 已解决, 未解决, 满意, 基本满意, 不满意."""
    return t(f"visit.solved_{int(solved)}") if solved is not None else t(f"rating.{score}")


def _resolution_id(session: Session, ticket: Ticket) -> int | None:
    return session.scalar(select(func.max(TicketEvent.id)).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "status", TicketEvent.to_status == S.resolved))


def answer(session: Session, ticket_id: int, person: Person | None, *, solved: bool | None = None,
           score: int | None = None, tz: ZoneInfo, now: datetime | None = None) -> Answered:
    """Record the answers given (one or both); an answer already given in this visit is not taken
    again (NotAllowed when nothing new was given). NotAllowed too for anyone not the reporter
    or a follower, and for a ticket whose visit takes no answer."""
    if solved is None and score is None:
        raise ValueError("an answer needs solved or score")
    if score is not None and score not in SCORES:
        raise ValueError(f"a satisfaction is 1, 2 or 3, not {score!r}")
    now = now or utcnow()
    ticket = ticket_for_change(session, ticket_id, lock=True)
    check(session, person, "rate", ticket)
    assert person is not None  # check() refuses nobody
    if not missing(ticket):  # e.g. the satisfaction after 未解决 once the ticket was rejected
        raise NotAllowed(t("deny.rated"))
    given: dict[str, bool | int | None] = {"solved": solved, "score": score}
    new = [q for q in VISIT_QUESTIONS if given[q] is not None and q in missing(ticket)]
    if not new:
        raise NotAllowed(t("visit.already_" + next(q for q in VISIT_QUESTIONS if given[q] is not None)))
    resolution = _resolution_id(session, ticket)
    for question in new:
        if question == "solved":
            ticket.solved = solved
            note = label(solved=solved)
        else:
            ticket.rating, ticket.rated_at = score, now
            note = label(score=score)
        session.add(TicketEvent(ticket_id=ticket.id, actor_id=person.id, at=now, from_status=ticket.status,
                                to_status=ticket.status, note=note, kind=KIND,
                                detail={question: given[question], "resolution": resolution}))
    ticket.updated_at = now
    session.flush()
    reopened = closed = False
    if "solved" in new and ticket.solved is False:
        _reopen(session, ticket, person, tz=tz, now=now)
        reopened = True
    elif ticket.status is S.resolved and ticket.solved and ticket.rating is not None:
        _close(session, ticket, person, now=now)
        closed = True
    elif ticket.status is not S.resolved:  # the satisfaction after 未解决: the handlers hear it
        event = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                .order_by(TicketEvent.id.desc()).limit(1)).one()
        tell_branch(session, ticket, event, {"text": t("line.visit_score", number=ticket.number,
                                                       rating=label(score=ticket.rating))})
    return Answered(ticket, missing(ticket), reopened, closed)


def _reopen(session: Session, ticket: Ticket, person: Person, *, tz: ZoneInfo, now: datetime) -> None:
    """未解决: back to the branch at once, with fresh limits (core.tickets.lifecycle.change_status)."""
    event = change_status(session, ticket, S.reopened, actor=person, note=t("visit.note_unsolved"), now=now)
    tell_branch(session, ticket, event,
                card_payload(session, ticket, tz=tz, lead=t("card.reopened", number=ticket.number)))
    tell_residents(session, ticket, event, "reopened")


def _close(session: Session, ticket: Ticket, person: Person, *, now: datetime) -> None:
    """已解决 and a satisfaction: the visit is complete and the ticket closed. The note is never a
    bare rating label, which core.tickets.rates reads as an answer of the old single question."""
    answers = t("visit.answers", solved=label(solved=True), rating=label(score=ticket.rating))
    event = change_status(session, ticket, S.closed, actor=person, note=t("visit.note_closed", answers=answers),
                          now=now)
    tell_branch(session, ticket, event, {"text": t("line.rated", number=ticket.number, rating=answers)})
    tell_residents(session, ticket, event, "closed")
