"""The return visit in words or by button (core.tickets.visit), and what 未解决 asks next.

Words typed to the bot (Rasa's `rate` intent, actions/rating.py) answer the newest ticket whose
visit still takes an answer: words about solving (修好了, 好了, 还是不行) answer 问题解决了吗, words of
satisfaction (满意, 还行, 不满意) answer 您满意吗; `answers_of` reads both from one message. The
buttons of the 办结 notice and of /my → 查看 do the same by ticket. 未解决 reopens the ticket and asks
what is still wrong: the question is a prompt (core.messaging.prompts.REOPEN), so the person's next
message is the answer, which becomes a remark on the reopened ticket (core.tickets.remarks) that
the handlers see.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.messages import t
from core.messaging import prompts
from core.models import Person, Ticket, TicketFollower, TicketStatus
from core.presentation import callbacks
from core.presentation.cards import VISIT_QUESTIONS
from core.tickets import remarks, visit

# 问题解决了吗 in words; "not solved" is read first ("还没好" holds "好", "没解决" holds "解决").
_UNSOLVED = ("没解决", "没有解决", "未解决", "不解决", "没修好", "没有修好", "没弄好", "没处理好", "没好",
             "还是坏", "还坏", "又坏", "还是不行", "还不行", "不行", "没用", "没有用", "老样子", "照旧", "依旧",
             "还是一样", "还有问题", "没人来", "没人管", "还漏", "还是漏", "还堵", "还是堵", "还是吵", "没通")
_SOLVED = ("解决了", "已解决", "解决啦", "修好了", "修好啦", "弄好了", "处理好了", "搞定", "好了", "好啦",
           "没问题了", "没事了", "恢复了", "通了", "能用了", "可以用了", "不漏了", "不堵了", "亮了", "挪走了", "清走了")
# 您满意吗 in words, most specific first ("不满意" holds "满意"); scores as core.tickets.visit.SCORES.
_SATISFACTION = (
    (1, ("不满意", "不太满意", "很差", "太差", "差评", "糟糕", "敷衍")),
    (2, ("基本满意", "还行", "还可以", "一般", "凑合", "马马虎虎", "差不多", "还好", "过得去")),
    (3, ("非常满意", "很满意", "满意", "挺好", "很好", "好评", "太好了")),
)


class Answers(NamedTuple):
    solved: bool | None
    score: int | None


def solved_of(text: str) -> bool | None:
    """True 已解决, False 未解决 — or None when the words do not say."""
    if any(w in text for w in _UNSOLVED):
        return False
    if any(w in text for w in _SOLVED):
        return True
    return None


def score_of(text: str) -> int | None:
    """3 满意, 2 基本满意, 1 不满意 — or None when the words rate nothing."""
    for score, words in _SATISFACTION:
        if any(w in text for w in words):
            return score
    return None


def answers_of(text: str) -> Answers:
    """Both answers one message gives: "好了，谢谢" (solved), "修好了，满意" (both), "还是不行" (not solved)."""
    return Answers(solved_of(text), score_of(text))


def awaiting(session: Session, person: Person) -> list[Ticket]:
    """Tickets `person` reported or follows whose return visit still takes an answer (resolved ones,
    and the satisfaction after 未解决), newest first."""
    followed = select(TicketFollower.ticket_id).where(TicketFollower.person_id == person.id)
    after_unsolved = and_(Ticket.solved.is_(False), Ticket.rating.is_(None), Ticket.status.not_in(visit.FINISHED))
    found = session.scalars(
        select(Ticket).where(or_(Ticket.status == TicketStatus.resolved, after_unsolved),
                             or_(Ticket.reporter_id == person.id, Ticket.id.in_(followed)))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc()))
    return [x for x in found if visit.missing(x)]


def payloads(ticket_id: int, questions: tuple[str, ...] = VISIT_QUESTIONS) -> list[tuple[str, str]]:
    """(title, callback data) of the buttons of the questions asked (handled by bot/ticket_buttons.py)."""
    out = [(visit.label(solved=yes), callbacks.solved(ticket_id, yes)) for yes in (True, False)] \
        if "solved" in questions else []
    if "score" in questions:
        out += [(visit.label(score=score), callbacks.rating(ticket_id, score)) for score in visit.SCORES]
    return out


def answer(session: Session, ticket_id: int, person: Person | None, *, solved: bool | None = None,
           score: int | None = None, tz: ZoneInfo, now: datetime | None = None) -> visit.Answered:
    """Answer the visit (core.tickets.visit.answer, which checks who may); after 未解决 the person is
    asked what is still wrong (a prompt: their next message is the answer). NotAllowed as there."""
    answered = visit.answer(session, ticket_id, person, solved=solved, score=score, tz=tz, now=now)
    if answered.reopened and person is not None and person.telegram_id is not None:
        prompts.ask(session, person.telegram_id, prompts.REOPEN, {"ticket": ticket_id})
    return answered


def still_wrong(session: Session, ticket_id: int, person: Person | None, text: str) -> Ticket | None:
    """The answer to "what is still wrong": a remark on the reopened ticket for its handlers."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    note = t("rating.note_still_wrong", text=text)
    remarks.remark(session, ticket, person, note, t("rating.line_still_wrong", number=ticket.number, text=text))
    return ticket
