"""The core of the residents' journeys: fragments joined from the inbox, ratings in words and the
question after 未解决, a remark on a ticket that the handlers see (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.messages import t
from core.messaging import fragments, inbox, prompts
from core.models import InboxMessage, TicketStatus
from core.tickets import lifecycle, ratings, remarks, visit
from tests.app.test_workflow import (
    BRANCH_CHAT,
    REPORTER,
    T0,
    TZ,
    report,
    resolved_ticket,
    sent,
    who,
)

SENDER, OTHER = 752000001, 752000002


def _said(s: Session, sender: int, text: str, minutes: float, *, fragment: bool = False) -> InboxMessage:
    row = inbox.accept(s, sender_id=sender, chat_id=sender, text=text, meta={})
    row.received_at = T0 + timedelta(minutes=minutes)
    inbox.mark_done(s, row.id)
    if fragment:
        fragments.mark(s, row.id)
    s.flush()
    return row


def test_fragments_join_while_each_follows_the_last_within_the_window(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        _said(s, SENDER, "7号楼电梯坏了", 0)  # answered as a report: not a fragment, the chain starts after it
        _said(s, SENDER, "我们三号楼", 10, fragment=True)
        _said(s, OTHER, "你好", 11, fragment=True)  # someone else's words never join
        _said(s, SENDER, "楼道的灯", 13, fragment=True)
        now = _said(s, SENDER, "不亮了", 17)
        pieces = fragments.before(s, SENDER, now.id, now.received_at)
        assert [p for _, p in pieces] == ["我们三号楼", "楼道的灯"]
        assert fragments.join([p for _, p in pieces] + ["不亮了"]) == "我们三号楼，楼道的灯，不亮了"
        # more than WINDOW after the last fragment: a fresh start
        later = _said(s, SENDER, "不亮了", 13 + fragments.WINDOW.total_seconds() / 60 + 1)
        assert fragments.before(s, SENDER, later.id, later.received_at) == []


def test_a_gap_longer_than_the_window_inside_the_chain_ends_it(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        _said(s, SENDER, "我们三号楼", 0, fragment=True)
        _said(s, SENDER, "楼道的灯", 30, fragment=True)
        now = _said(s, SENDER, "不亮了", 31)
        assert [p for _, p in fragments.before(s, SENDER, now.id, now.received_at)] == ["楼道的灯"]


@pytest.mark.parametrize(("words", "solved", "score"), [
    ("满意", None, 3), ("很满意，谢谢", None, 3), ("还行", None, 2), ("一般般吧", None, 2), ("基本满意", None, 2),
    ("不满意", None, 1), ("差评", None, 1), ("你好", None, None), ("谢谢", None, None),
    ("好了，谢谢", True, None), ("修好了", True, None), ("解决了", True, None), ("已经好了", True, None),
    ("灯亮了", True, None), ("修好了，很满意", True, 3), ("解决了，但是不满意", True, 1),
    ("还是不行", False, None), ("还没好", False, None), ("还是坏的", False, None), ("没解决", False, None),
    ("还是没修好", False, None), ("问题没解决", False, None), ("还没好了", False, None),
    ("没解决，不满意", False, 1), ("没修好，不过态度还行", False, 2)])
def test_visit_words(words: str, solved: bool | None, score: int | None) -> None:
    assert ratings.answers_of(words) == (solved, score)
    assert (ratings.solved_of(words), ratings.score_of(words)) == (solved, score)


def test_unsolved_asks_what_is_still_wrong_and_the_answer_reaches_the_handlers(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = resolved_ticket(s)
        reporter = who(s, REPORTER)
        assert ratings.awaiting(s, reporter) == [ticket]
        ratings.answer(s, ticket.id, reporter, solved=False, tz=TZ)
        # reopened at once; its satisfaction is still welcome, so it still awaits that answer
        assert ticket.status is TicketStatus.reopened and ratings.awaiting(s, reporter) == [ticket]
        assert visit.missing(ticket) == ("score",)
        asked = prompts.current(s, reporter.telegram_id or 0)
        assert asked == prompts.Asked(prompts.REOPEN, {"ticket": ticket.id})
        ratings.still_wrong(s, ticket.id, reporter, "车还停在那里")
        last = lifecycle.events_of(s, ticket)[-1]
        assert (last.from_status, last.to_status, last.actor_id) == (TicketStatus.reopened, TicketStatus.reopened,
                                                                     reporter.id)
        assert last.note == t("rating.note_still_wrong", text="车还停在那里")
        assert sent(s, BRANCH_CHAT)[-1]["text"] == t("rating.line_still_wrong", number=ticket.number, text="车还停在那里")
        assert ticket.status is TicketStatus.reopened  # a remark changes no status


def test_a_remark_on_an_urgent_ticket_reaches_the_community_admins_too(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s, category="emergency")
        before = len(lifecycle.events_of(s, ticket))
        remarks.remark(s, ticket, who(s, REPORTER), t("emergency.note_over"), "line")
        assert len(lifecycle.events_of(s, ticket)) == before + 1 and ticket.status is TicketStatus.accepted
        assert sent(s, BRANCH_CHAT)[-1]["text"] == "line"
        assert sent(s, 700000069)[-1]["text"] == "line"  # 和平里社区's admin
