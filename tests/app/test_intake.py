"""Intake you can trust: emergencies in every state, past events, mixed messages, photos,
failed actions and failed answers — through the real Application, Rasa server and action server.

Every test shares the stack's database (see test_journey), so each uses its own residents.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.rasa_client import RasaClient
from core.db import make_engine
from core.messages import t
from core.models import InboxMessage, InboxState, utcnow
from core.protocol import INBOX_ID, REPLAY
from tests.app.journey import journey
from tests.app.stack import TEST_SECRET, Stack
from tests.app.test_journey import ADMIN, bind, tickets_of

KITCHEN_FIRE = "救命啊！！5号楼2单元我家厨房着火了，火好大，我们全家已经跑出来了，快来人"


@pytest.fixture
def factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def test_kitchen_fire_before_start_gets_numbers_and_urgent_ticket(factory: sessionmaker[Session],
                                                                  rasa_stack: Stack) -> None:
    resident = 720000001  # never ran /start

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            replies = await j.say(resident, KITCHEN_FIRE)
            assert "119" in replies[0], replies
            assert t("default") not in replies

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.urgent and ticket.category_code == "emergency"


def test_emergency_with_no_place_pages_every_admin_and_says_so(factory: sessionmaker[Session],
                                                                rasa_stack: Stack) -> None:
    resident = 720000011  # never ran /start, names no place

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            replies = await j.say(resident, "救命啊 着火了 火越烧越大 快来人")
            assert "119" in replies[0], replies
            [ticket] = tickets_of(factory, resident)
            assert ticket.community_id is None
            assert t("emergency.filed_unplaced", number=ticket.number) in replies, replies
            assert t("emergency.filed", number=ticket.number) not in replies  # no branch was told
            assert any(ticket.number in x and "紧急" in x for x in j.texts(ADMIN)), j.texts(ADMIN)[-2:]

    asyncio.run(scenario())


def test_kitchen_fire_mid_form_and_mid_binding(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    mid_form, mid_binding = 720000002, 720000003

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            asked = await j.say(mid_form, "路灯坏了好几个，晚上黑乎乎的")  # not bound: asks where
            assert any(t("report.ask_place")[:8] in x for x in asked), asked
            replies = await j.say(mid_form, KITCHEN_FIRE)
            assert "119" in replies[0], replies

            await j.say(mid_binding, "/start")
            await j.press(mid_binding, mid_binding, "和平里社区")  # now choosing a building
            replies = await j.say(mid_binding, "5号楼着火了 火很大 快来人")
            assert any("119" in x for x in replies), replies
            assert not any(t("bind.consent")[:6] in x for x in replies), replies

    asyncio.run(scenario())
    for resident in (mid_form, mid_binding):
        tickets = tickets_of(factory, resident)
        assert [x.category_code for x in tickets] == ["emergency"], resident


def test_past_event_stays_a_normal_complaint(factory: sessionmaker[Session],
                                                           rasa_stack: Stack) -> None:
    """A past event with no danger now stays a normal complaint: no numbers, no urgent ticket."""
    resident = 720000004

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里3号楼")
            replies = await j.say(resident, "上周我妈在3号楼电梯里被困了二十分钟才出来，到现在物业也没个说法")
            assert not any("119" in x for x in replies), replies
            assert any("电梯" in x for x in replies), replies  # the elevator report's summary

    asyncio.run(scenario())
    assert all(not x.urgent for x in tickets_of(factory, resident))


def test_complaint_with_pension_question_files_complaint_and_refers(factory: sessionmaker[Session],
                                                                    rasa_stack: Stack) -> None:
    resident = 720000005

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里2号楼")
            replies = await j.say(resident, "2号楼门口的下水道堵了三天了，污水漫到路上，臭得很。"
                                            "另外我想问一下，我的养老金这个月怎么少发了两百块？")
            assert any("12345" in x for x in replies), replies
            assert any("排水" in x for x in replies), replies  # the summary of the sewage report
            await j.press(resident, resident, t("report.button_confirm"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.category_code == "sewage"


def test_photo_alone_asks_then_joins_report_and_caption_is_one_report(factory: sessionmaker[Session],
                                                                      rasa_stack: Stack) -> None:
    alone, in_report = 720000006, 720000007

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, alone, "和平里社区", "和平里1号楼")
            asked = await j.photo(alone, "photo-alone")
            assert t("report.photo_kept") in asked, asked  # no report open: what is it?
            summary = await j.say(alone, "1号楼楼道里堆满了纸箱和旧家具")
            assert any("照片：1张" in x for x in summary), summary

            await bind(j, in_report, "和平里社区", "和平里8号楼")
            summary = await j.say(in_report, "8号楼门口的垃圾桶满了好几天没人清")
            assert any("照片：无" in x for x in summary), summary
            again = await j.photo(in_report, "photo-later")
            assert any("照片：1张" in x for x in again), again  # attached, summary shown again
            await j.press(in_report, in_report, t("report.button_confirm"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, in_report)
    assert ticket.photo_file_ids == ["photo-later"]


def test_two_failed_place_answers_offer_buttons_and_a_way_out(factory: sessionmaker[Session],
                                                              rasa_stack: Stack) -> None:
    resident = 720000008  # not bound: the form asks where

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            asked = await j.say(resident, "小区里的路灯坏了好几个，晚上黑乎乎的")
            assert any(t("report.ask_place")[:8] in x for x in asked), asked
            first = await j.say(resident, "@就在那边")  # once made an action raise
            assert any(t("report.place_unknown") in x for x in first), first
            second = await j.say(resident, "不知道叫啥的地方")
            assert any(t("report.ask_place_way_out")[:8] in x for x in second), second
            message, _ = j.find_button(resident, t("report.button_cancel"))  # a way out
            assert message is not None
            third = await j.say(resident, "反正就是那里")
            assert any(t("report.place_give_up")[:10] in x for x in third), third  # never loops
            after = await j.say(resident, "你好")
            assert not any(t("report.ask_place")[:8] in x for x in after), after

    asyncio.run(scenario())
    assert tickets_of(factory, resident) == []


def test_failing_action_tells_resident_and_keeps_message_pending(factory: sessionmaker[Session],
                                                                 rasa_stack: Stack) -> None:
    """The action server's database loses the categories table: every report action raises.
    The resident hears that the message will be handled; it stays pending and is answered
    once the actions work again."""
    resident = 720000009

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里5号楼")
            with factory() as s:
                s.execute(text("ALTER TABLE categories RENAME TO categories_away"))
                s.commit()
            try:
                replies = await j.say(resident, "5号楼门口的路灯坏了一个礼拜了")
            finally:
                with factory() as s:
                    s.execute(text("ALTER TABLE categories_away RENAME TO categories"))
                    s.commit()
            assert t("answer_failed") in replies, replies
            with factory() as s:
                row = s.scalars(select(InboxMessage).where(InboxMessage.sender_id == resident)
                                .order_by(InboxMessage.id.desc())).first()
                assert row is not None and row.state is InboxState.pending and row.attempts == 1
                row.retry_at = utcnow() - timedelta(seconds=1)  # due now, as after the backoff
                s.commit()
            await j.app.bot_data["services"].answer_all()
            await j.drain()
            assert any("路灯" in x or "公共设施" in x for x in j.texts(resident)[-3:]), j.texts(resident)[-3:]
            with factory() as s:
                row = s.scalars(select(InboxMessage).where(InboxMessage.sender_id == resident)
                                .order_by(InboxMessage.id.desc())).first()
                assert row is not None and row.state is InboxState.done

    asyncio.run(scenario())


def test_estate_named_before_the_building_number_places_the_report(factory: sessionmaker[Session],
                                                                   rasa_stack: Stack) -> None:
    resident = 720000010  # never bound: only the caption says where

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            summary = await j.photo(resident, "photo-bins", caption="樱花园3号楼门口的垃圾桶满了好几天没人清，臭得很")
            assert any("樱花园小区3号楼" in x and "照片：1张" in x for x in summary), summary
            assert not any("和平里小区3号楼" in x for x in summary), summary  # no estates to choose from
            await j.press(resident, resident, t("report.button_confirm"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.category_code == "sanitation" and ticket.grid_id is not None


def test_a_confirmation_whose_filing_failed_files_on_the_retry(factory: sessionmaker[Session],
                                                              rasa_stack: Stack) -> None:
    """The action server fails while filing: Rasa rewinds the turn, so the retried 确认提交 meets
    the summary again and files the report (it does not answer 好的 with nothing filed)."""
    resident = 720000012

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里8号楼")
            summary = await j.say(resident, "8号楼楼下有人天天遛狗不牵绳，狗屎到处都是")
            assert any("请核对" in x for x in summary), summary
            with factory() as s:
                s.execute(text("ALTER TABLE tickets RENAME TO tickets_away"))
                s.commit()
            try:
                failed = await j.press(resident, resident, t("report.button_confirm"))
            finally:
                with factory() as s:
                    s.execute(text("ALTER TABLE tickets_away RENAME TO tickets"))
                    s.commit()
            assert t("answer_failed") in failed, failed
            with factory() as s:
                row = s.scalars(select(InboxMessage).where(InboxMessage.sender_id == resident)
                                .order_by(InboxMessage.id.desc())).first()
                assert row is not None and row.state is InboxState.pending
                row.retry_at = utcnow() - timedelta(seconds=1)
                s.commit()
            await j.app.bot_data["services"].answer_all()
            await j.drain()
            assert any("已提交" in x for x in j.texts(resident)[-3:]), j.texts(resident)[-3:]

    asyncio.run(scenario())
    assert len(tickets_of(factory, resident)) == 1


def test_a_message_sent_to_rasa_again_is_answered_as_before_not_run_twice(rasa_stack: Stack) -> None:
    """The bot died after Rasa answered and before it recorded the answer: the same inbox
    message sent again gets the same answer, and the form has not moved on."""
    sender = 720000013

    async def scenario() -> None:
        rasa = RasaClient(rasa_stack.rasa_url, TEST_SECRET)
        try:
            first = await rasa.send(sender, "小区里好几个路灯都坏了", metadata={INBOX_ID: 9_000_001})
            again = await rasa.send(sender, "小区里好几个路灯都坏了", metadata={INBOX_ID: 9_000_001, REPLAY: True})
            assert [r.text for r in again] == [r.text for r in first] and first, (first, again)
            assert any(t("report.ask_place")[:8] in (r.text or "") for r in first), first
            summary = await rasa.send(sender, "和平里小区3号楼", metadata={INBOX_ID: 9_000_002})
            assert any("请核对" in (r.text or "") and "路灯" in (r.text or "") for r in summary), summary
        finally:
            await rasa.aclose()

    asyncio.run(scenario())
