"""A resident's rating of a resolved ticket, in words or by button, and what 不满意 asks next.

`满意`, `还行`, `不满意` typed in words (Rasa's `rate` intent, actions/rating.py) rate the newest
ticket the person may still rate; the buttons of the 办结 notice and of /my → 查看 do the same
by ticket. 不满意 reopens the ticket (core.tickets.service.rate) and asks what is still wrong: the
question is a prompt (core.messaging.prompts.REOPEN), so the person's next message is the answer, which
becomes a remark on the reopened ticket (core.tickets.remarks) that the handlers see.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.messages import t
from core.messaging import prompts
from core.models import Person, Ticket, TicketFollower, TicketStatus
from core.presentation import callbacks
from core.tickets import remarks, service
from core.tickets.lifecycle import RATINGS

# Words, most specific first ("不满意" contains "满意"); the score is lifecycle.RATINGS's.
_WORDS = (
    (1, ("不满意", "不太满意", "没解决", "没有解决", "没修好", "没弄好", "还是不行", "还没好", "还是坏", "不行", "很差", "差评")),
    (2, ("基本满意", "还行", "还可以", "一般", "凑合", "马马虎虎", "差不多", "还好")),
    (3, ("非常满意", "很满意", "满意", "解决了", "修好了", "挺好", "很好", "好评")),
)


def score_of(text: str) -> int | None:
    """3 满意, 2 基本满意, 1 不满意 — or None when the words rate nothing."""
    for score, words in _WORDS:
        if any(w in text for w in words):
            return score
    return None


def awaiting(session: Session, person: Person) -> list[Ticket]:
    """Resolved tickets `person` reported or follows and may still rate, newest first."""
    followed = select(TicketFollower.ticket_id).where(TicketFollower.person_id == person.id)
    return list(session.scalars(
        select(Ticket).where(Ticket.status == TicketStatus.resolved,
                             or_(Ticket.reporter_id == person.id, Ticket.id.in_(followed)))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())))


def payloads(ticket_id: int) -> list[tuple[str, str]]:
    """(title, callback data) of the rating buttons for a ticket (handled by bot/ticket_buttons.py)."""
    return [(t(f"rating.{score}"), callbacks.rating(ticket_id, score)) for score in RATINGS]


def rate(session: Session, ticket_id: int, person: Person | None, score: int, *,
         tz: ZoneInfo) -> Ticket:
    """Rate (core.tickets.service.rate, which checks who may); after 不满意 the person is asked what
    is still wrong (a prompt: their next message is the answer). NotAllowed as there."""
    ticket = service.rate(session, ticket_id, person, score, tz=tz)
    if ticket.status is TicketStatus.reopened and person is not None and person.telegram_id is not None:
        prompts.ask(session, person.telegram_id, prompts.REOPEN, {"ticket": ticket.id})
    return ticket


def still_wrong(session: Session, ticket_id: int, person: Person | None, text: str) -> Ticket | None:
    """The answer to "what is still wrong": a remark on the reopened ticket for its handlers."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    note = t("rating.note_still_wrong", text=text)
    remarks.remark(session, ticket, person, note, t("rating.line_still_wrong", number=ticket.number, text=text))
    return ticket
