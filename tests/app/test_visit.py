"""The return visit (回访): two questions in one message, each answer an event of its own
(core.tickets.visit), in core with a controlled clock and through the real Application.

Core: 已解决 + any satisfaction closes; 未解决 reopens at once and still takes the satisfaction;
不满意 alone reopens nothing; an answer is not taken twice; only the reporter and followers answer;
a half-answered visit closes after three days keeping its half; a new resolution asks afresh; the
migration. Application: the rows of the 办结 notice go one by one as they are answered, 未解决
asks what is still wrong, a second press of a row and a stranger's press are refused, an old
button of the single question ("r:<id>:1") is a satisfaction answer.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.db import make_engine, make_session_factory, session_scope
from core.messages import t
from core.messaging import buttons, prompts
from core.migrate import downgrade, upgrade
from core.models import Building, OutboxMessage, Person, Ticket, TicketEvent, TicketStatus
from core.people import residents
from core.presentation import callbacks
from core.tickets import lifecycle, ratings, visit
from core.tickets import service as ticket_service
from core.tickets.categories import sync_categories
from core.tickets.lifecycle import NewTicket
from tests.app.journey import Journey, journey

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus
T0 = datetime(2026, 12, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
BRANCH_CHAT = -1001000000001  # BR-HPL-01, grid G-HPL-01
REPORTER, MEMBER = "P-0071", "P-0002"
REPORTER_TG, MEMBER_TG = 700000071, 700000002
NO_RASA = "http://127.0.0.1:9"  # button presses never reach Rasa


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def resolved_ticket(s: Session, now: datetime = T0) -> Ticket:
    b = s.scalars(select(Building).where(Building.code == "B-HPL-01-07")).one()
    ticket = ticket_service.submit_report(s, NewTicket(
        "parking", "7号楼门口的消防通道被私家车堵了", reporter_id=who(s, REPORTER).id,
        community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id), tz=TZ, now=now)
    ticket_service.claim(s, ticket.id, who(s, MEMBER), now=now + HOUR)
    return ticket_service.resolve(s, ticket.id, who(s, MEMBER), "已联系车主挪车", now=now + 2 * HOUR)


def answer(s: Session, ticket: Ticket, at: datetime, code: str = REPORTER, **given: Any) -> visit.Answered:
    return visit.answer(s, ticket.id, who(s, code), tz=TZ, now=at, **given)


def visit_events(s: Session, ticket: Ticket) -> list[tuple[Any, ...]]:
    return [(e.detail, e.note, e.at) for e in lifecycle.events_of(s, ticket) if e.kind == "visit"]


def group_texts(s: Session) -> list[str]:
    return [m.payload.get("text", "") for m in s.scalars(
        select(OutboxMessage).where(OutboxMessage.chat_id == BRANCH_CHAT).order_by(OutboxMessage.id))]


# -- core ------------------------------------------------------------------------------------


def test_solved_then_not_satisfied_closes_and_each_answer_is_an_event(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = resolved_ticket(s)
        resolution = lifecycle.events_of(s, ticket)[-1].id
        got = answer(s, ticket, T0 + 3 * HOUR, solved=True)
        assert (got.missing, got.reopened, got.closed, ticket.status) == (("score",), False, False, S.resolved)
        got = answer(s, ticket, T0 + 4 * HOUR, score=1)  # 不满意 after 已解决: closed all the same
        assert (got.missing, got.reopened, got.closed) == ((), False, True)
        assert (ticket.status, ticket.solved, ticket.rating, ticket.rated_at) == (S.closed, True, 1, T0 + 4 * HOUR)
        assert visit_events(s, ticket) == [({"solved": True, "resolution": resolution}, "已解决", T0 + 3 * HOUR),
                                           ({"score": 1, "resolution": resolution}, "不满意", T0 + 4 * HOUR)]
        last = lifecycle.events_of(s, ticket)[-1]
        assert (last.kind, last.to_status, last.actor_id, last.note) == (
            "status", S.closed, who(s, REPORTER).id, "回访：已解决，不满意")
        assert group_texts(s)[-1] == f"{ticket.number} 居民回访：已解决，不满意，已关闭"
        assert all(e.actor_id == who(s, REPORTER).id for e in lifecycle.events_of(s, ticket) if e.kind == "visit")


def test_not_satisfied_alone_reopens_nothing_and_an_answer_is_not_taken_twice(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = resolved_ticket(s)
        answer(s, ticket, T0 + 3 * HOUR, score=1)
        assert ticket.status is S.resolved and (ticket.solved, ticket.rating) == (None, 1)
        with pytest.raises(NotAllowed, match=t("visit.already_score")):
            answer(s, ticket, T0 + 4 * HOUR, score=3)
        assert ticket.rating == 1 and len(visit_events(s, ticket)) == 1
        with pytest.raises(NotAllowed, match="只有报告人"):
            answer(s, ticket, T0 + 4 * HOUR, code=MEMBER, solved=True)
        # both given where one is answered: the new half is taken, the other ignored
        got = answer(s, ticket, T0 + 5 * HOUR, solved=True, score=3)
        assert got.closed and (ticket.solved, ticket.rating) == (True, 1)
        with pytest.raises(NotAllowed, match=t("deny.rated")):
            answer(s, ticket, T0 + 6 * HOUR, solved=True)


def test_unsolved_reopens_at_once_then_takes_the_satisfaction_and_a_new_resolution_asks_afresh(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = resolved_ticket(s)
        reporter = who(s, REPORTER)
        got = ratings.answer(s, ticket.id, reporter, solved=False, tz=TZ, now=T0 + DAY)
        assert (got.reopened, got.missing, ticket.status, ticket.claimed_by_id) == (True, ("score",), S.reopened, None)
        assert ticket.respond_due_at == T0 + 2 * DAY and ticket.resolve_due_at == T0 + 8 * DAY  # fresh limits
        assert prompts.current(s, REPORTER_TG) == prompts.Asked(prompts.REOPEN, {"ticket": ticket.id})
        card = buttons.plain(s, s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == BRANCH_CHAT)
                                          .order_by(OutboxMessage.id.desc())).first().payload)  # type: ignore[union-attr]
        assert card["text"].startswith(t("card.reopened", number=ticket.number))
        assert card["buttons"][0][0]["callback_data"] == f"t:claim:{ticket.id}"
        reopen = lifecycle.events_of(s, ticket)[-1]
        assert (reopen.to_status, reopen.actor_id, reopen.note) == (S.reopened, reporter.id, "回访：未解决")
        with pytest.raises(NotAllowed, match=t("visit.already_solved")):  # the solved row is answered
            answer(s, ticket, T0 + DAY + MIN, solved=True)
        got = answer(s, ticket, T0 + DAY + 2 * MIN, score=3)  # 满意 after 未解决: kept, reopens nothing more
        assert (got.missing, got.reopened, got.closed, ticket.status, ticket.rating) == ((), False, False, S.reopened, 3)
        assert group_texts(s)[-1] == f"{ticket.number} 回访满意度：满意"
        with pytest.raises(NotAllowed, match=t("deny.rated")):
            answer(s, ticket, T0 + DAY + 3 * MIN, score=1)

        ticket_service.claim(s, ticket.id, who(s, MEMBER), now=T0 + 2 * DAY)
        ticket_service.resolve(s, ticket.id, who(s, MEMBER), "车已拖走", now=T0 + 3 * DAY)
        assert (ticket.solved, ticket.rating, ticket.rated_at) == (None, None, None)
        assert visit.missing(ticket) == ("solved", "score") and ratings.awaiting(s, reporter) == [ticket]
        second = lifecycle.events_of(s, ticket)[-1].id
        assert answer(s, ticket, T0 + 3 * DAY + HOUR, solved=True, score=2).closed
        assert [d["resolution"] for d, _, _ in visit_events(s, ticket)][-2:] == [second, second]


def test_a_follower_answers_and_a_stranger_is_refused(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = resolved_ticket(s)
        neighbour = residents.reporter_for(s, 800000001, "小王")
        stranger = residents.reporter_for(s, 800000002, "小李")
        assert neighbour is not None and stranger is not None
        ticket_service.join(s, ticket.id, neighbour)
        with pytest.raises(NotAllowed, match="只有报告人"):
            visit.answer(s, ticket.id, stranger, solved=True, tz=TZ, now=T0 + 3 * HOUR)
        visit.answer(s, ticket.id, neighbour, solved=True, tz=TZ, now=T0 + 3 * HOUR)
        assert lifecycle.events_of(s, ticket)[-1].actor_id == neighbour.id and ticket.solved is True


def test_a_half_answered_visit_closes_after_three_days_keeping_its_half(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        half, none, score_only = resolved_ticket(s), resolved_ticket(s), resolved_ticket(s)
        answer(s, half, T0 + 2 * DAY, solved=True)
        answer(s, score_only, T0 + 2 * DAY, score=2)
        deadline = T0 + 2 * HOUR + 3 * DAY  # three days after the resolution, not after the answer
        assert ticket_service.close_unrated(s, now=deadline - MIN) == 0
        assert ticket_service.close_unrated(s, now=deadline + MIN) == 3
        assert [(x.status, x.solved, x.rating) for x in (half, none, score_only)] == [
            (S.closed, True, None), (S.closed, None, None), (S.closed, None, 2)]
        notes = [lifecycle.events_of(s, x)[-1] for x in (half, none, score_only)]
        assert [(e.actor_id, e.note) for e in notes] == [
            (None, t("note.auto_closed_half")), (None, t("note.auto_closed")), (None, t("note.auto_closed_half"))]
        with pytest.raises(NotAllowed, match="已关闭"):
            answer(s, half, deadline + HOUR, score=3)
        assert half.rating is None


def test_callback_data_of_both_rows_and_of_the_old_single_question() -> None:
    assert callbacks.parse_ticket("r:12:y") == ("solved", 12, 1)
    assert callbacks.parse_ticket("r:12:n") == ("solved", 12, 0)
    assert callbacks.parse_ticket("r:12:1") == ("rate", 12, 1)  # an old button: 不满意 as a satisfaction
    assert callbacks.parse_ticket(callbacks.solved(12, True)) == ("solved", 12, 1)
    for bad in ("r:12:4", "r:12:yes", "r:12:", "r::y"):
        assert callbacks.parse_ticket(bad) is None


def test_the_migration_adds_solved_and_clears_a_resolved_tickets_old_rating(empty_db_url: str) -> None:
    engine: Engine = make_engine(empty_db_url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("tickets")}

    upgrade(engine)
    with session_scope(make_session_factory(engine)) as s:
        sync_categories(s)
        ids = [lifecycle.file_ticket(s, NewTicket("noise", f"楼上装修太吵{i}"), tz=TZ).id for i in range(3)]
    downgrade(engine, "18e0c1d2e3f4")
    assert "solved" not in columns()
    with engine.begin() as c:  # as the old flow left them: resolved again after 不满意; closed 满意; reopened
        for ticket_id, status, rating in zip(ids, ("resolved", "closed", "reopened"), (1, 3, 1), strict=True):
            c.execute(text("UPDATE tickets SET status = :s, rating = :r WHERE id = :i"),
                      {"s": status, "r": rating, "i": ticket_id})
    upgrade(engine)
    with engine.connect() as c:
        rows = c.execute(text("SELECT rating, solved FROM tickets ORDER BY id")).all()
    assert [(r[0], None if r[1] is None else bool(r[1])) for r in rows] == [(None, None), (3, True), (1, False)]
    downgrade(engine, "18e0c1d2e3f4")
    assert "solved" not in columns() and "rating" in columns()
    engine.dispose()


# -- through the real Application ----------------------------------------------------------------


def keyboard(j: Journey, chat_id: int, message_id: int) -> list[list[str]]:
    message = j.fake.message(chat_id, message_id) or {}
    return [[b["text"] for b in row] for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])]


SOLVED_ROW, SCORE_ROW = ["已解决", "未解决"], ["满意", "基本满意", "不满意"]


def state(factory: sessionmaker[Session], ticket_id: int) -> tuple[Any, ...]:
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket.status, ticket.solved, ticket.rating


def test_the_notice_asks_both_and_each_row_goes_when_answered(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket_id = resolved_ticket(s).id

    async def scenario() -> None:
        async with journey(demo_factory, NO_RASA) as j:
            await j.drain()
            notice, _ = j.find_button(REPORTER_TG, "已解决")
            assert "问题解决了吗？您对处理满意吗？" in notice["text"]
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == [SOLVED_ROW, SCORE_ROW]

            got = await j.press(REPORTER_TG, REPORTER_TG, "已解决")
            assert got == [t("visit.more_toast")], got
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == [SCORE_ROW]
            assert state(demo_factory, ticket_id) == (S.resolved, True, None)

            # the same row again (a copy of its button, as an old message would have): refused politely
            got = await j.step(j.updates.callback_query(REPORTER_TG, j.issue(callbacks.solved(ticket_id, False)),
                                                        notice), REPORTER_TG)
            alerts = [c.params.get("text") for c in j.fake.calls_to("answerCallbackQuery")]
            assert alerts[-1] == t("visit.already_solved") and state(demo_factory, ticket_id)[1] is True

            # a stranger's press is refused and changes nothing
            got = await j.press(MEMBER_TG, REPORTER_TG, "基本满意")
            assert any("只有报告人" in x for x in got), got
            assert state(demo_factory, ticket_id) == (S.resolved, True, None)

            got = await j.press(REPORTER_TG, REPORTER_TG, "基本满意")
            assert got[-1] == t("visit.done_toast"), got
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == []
            assert any("居民回访：已解决，基本满意，已关闭" in x for x in j.texts(BRANCH_CHAT)[-2:])

    asyncio.run(scenario())
    assert state(demo_factory, ticket_id) == (S.closed, True, 2)


def test_unsolved_reopens_asks_what_is_wrong_keeps_the_score_row_and_asks_afresh_later(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket_id = resolved_ticket(s).id

    async def scenario() -> None:
        async with journey(demo_factory, NO_RASA) as j:
            await j.drain()
            notice, _ = j.find_button(REPORTER_TG, "未解决")
            got = await j.press(REPORTER_TG, REPORTER_TG, "未解决")
            with demo_factory() as s:
                number = s.get(Ticket, ticket_id).number  # type: ignore[union-attr]
            assert t("rating.ask_reason", number=number) in got, got
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == [SCORE_ROW]
            assert j.prompt(REPORTER_TG) == prompts.Asked(prompts.REOPEN, {"ticket": ticket_id})
            assert any(x.startswith(t("card.reopened", number=number)) for x in j.texts(BRANCH_CHAT)[-2:])
            assert state(demo_factory, ticket_id) == (S.reopened, False, None)
            assert await j.say(REPORTER_TG, "车还在那停着") == [t("rating.reason_sent")]

            await j.press(REPORTER_TG, REPORTER_TG, "不满意")  # the row left on the notice
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == []
            assert state(demo_factory, ticket_id) == (S.reopened, False, 1)

            # resolved again: a new notice asks both afresh
            with session_scope(demo_factory) as s:
                ticket_service.claim(s, ticket_id, who(s, MEMBER), now=T0 + 2 * DAY)
                ticket_service.resolve(s, ticket_id, who(s, MEMBER), "车已拖走", now=T0 + 3 * DAY)
            await j.drain()
            second, _ = j.find_button(REPORTER_TG, "已解决")
            assert second["message_id"] != notice["message_id"]
            assert keyboard(j, REPORTER_TG, second["message_id"]) == [SOLVED_ROW, SCORE_ROW]
            assert state(demo_factory, ticket_id) == (S.resolved, None, None)
            await j.press(REPORTER_TG, REPORTER_TG, "满意")
            await j.press(REPORTER_TG, REPORTER_TG, "已解决")

    asyncio.run(scenario())
    assert state(demo_factory, ticket_id) == (S.closed, True, 3)
    with demo_factory() as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                          .order_by(TicketEvent.id))]
    assert kinds.count("visit") == 4 and kinds[-1] == "status"


def test_an_old_button_of_the_single_question_is_a_satisfaction_answer(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket_id = resolved_ticket(s).id

    async def scenario() -> None:
        async with journey(demo_factory, NO_RASA) as j:
            await j.drain()
            notice, _ = j.find_button(REPORTER_TG, "已解决")
            old = j.issue(f"r:{ticket_id}:1")  # 不满意, as the buttons sent before this change carry it
            await j.step(j.updates.callback_query(REPORTER_TG, old, notice), REPORTER_TG)
            assert state(demo_factory, ticket_id) == (S.resolved, None, 1)  # recorded, not reopened
            assert j.prompt(REPORTER_TG) is None
            assert keyboard(j, REPORTER_TG, notice["message_id"]) == [SOLVED_ROW]
            await j.press(REPORTER_TG, REPORTER_TG, "已解决")

    asyncio.run(scenario())
    assert state(demo_factory, ticket_id) == (S.closed, True, 1)
