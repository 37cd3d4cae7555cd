"""The resident's journey end to end: the real Application (fake Telegram transport),
the real Rasa server and action server, one database.

Every test here shares the stack's database, so each uses its own residents,
categories and buildings.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine
from core.messages import t
from core.models import Person, Ticket, TicketFollower, TicketStatus
from tests.app.journey import journey
from tests.app.stack import Stack

BRANCH_CHAT = -1001000000001  # 和平里第一网格党支部 (G-HPL-01: buildings 1-9 of 和平里小区)
SECRETARY = 700000001  # P-0001
MEMBER = 700000002  # P-0002, member of BR-HPL-01
OUTSIDER = 700000009  # P-0009, member of another branch
ADMIN = 700000069  # P-0069, community admin of 和平里社区


@pytest.fixture
def factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def tickets_of(factory: sessionmaker[Session], telegram_id: int) -> list[Ticket]:
    with factory() as s:
        person = s.scalars(select(Person).where(Person.telegram_id == telegram_id)).first()
        if person is None:
            return []
        rows = s.scalars(select(Ticket).where(Ticket.reporter_id == person.id).order_by(Ticket.id)).all()
        for row in rows:
            _ = row.events, row.category  # load before the session closes
        return list(rows)


async def bind(j, user: int, community: str, building: str) -> list[str]:  # type: ignore[no-untyped-def]
    await j.say(user, "/start")
    await j.press(user, user, community)
    await j.press(user, user, building)
    return await j.press(user, user, t("bind.button_agree"))


def test_report_claim_resolve_rate(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000001

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            bound = await bind(j, resident, "和平里社区", "和平里7号楼")
            assert any("和平里小区7号楼" in x for x in bound), bound

            summary = await j.say(resident, "7号楼消防通道被车堵死了")
            assert any("消防安全" in x and "和平里小区7号楼" in x for x in summary), summary
            summary = await j.photo(resident, "photo-fire-lane-1")
            assert any("照片：1张" in x for x in summary), summary
            filed = await j.press(resident, resident, t("report.button_confirm"))
            assert any("工单号" in x for x in filed), filed

            # The branch group gets the card: photo, number, masked reporter, buttons.
            card = [m for m in j.fake.sent_messages(BRANCH_CHAT) if m["method"] == "sendPhoto"]
            assert len(card) == 1 and card[0]["photo"] == "photo-fire-lane-1"
            assert "消防" in card[0]["caption"]

            claimed = await j.press(MEMBER, BRANCH_CHAT, "领单")
            assert any(t("ticket.claimed_toast") in x for x in claimed), claimed
            assert any("领单" in x for x in j.texts(resident)[-2:]), j.texts(resident)

            prompt = await j.press(SECRETARY, BRANCH_CHAT, "办结")
            assert any("办结说明" in x for x in prompt), prompt
            done = await j.say(SECRETARY, "已联系车主挪车，消防通道已畅通")
            assert done == [t("ticket.resolve_done")]
            assert any("已联系车主挪车" in x for x in j.texts(resident)[-2:]), j.texts(resident)

            await j.press(resident, resident, "已解决")
            await j.press(resident, resident, "满意")

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.status is TicketStatus.closed and ticket.photo_file_ids == ["photo-fire-lane-1"]
    assert ticket.category_code == "fire_safety"
    steps = [(e.from_status, e.to_status) for e in ticket.events]
    assert steps == [(None, TicketStatus.new), (TicketStatus.new, TicketStatus.accepted),
                     (TicketStatus.accepted, TicketStatus.claimed), (TicketStatus.claimed, TicketStatus.resolved),
                     (TicketStatus.resolved, TicketStatus.resolved), (TicketStatus.resolved, TicketStatus.resolved),
                     (TicketStatus.resolved, TicketStatus.closed)]
    assert [e.kind for e in ticket.events][-3:] == ["visit", "visit", "status"]
    with factory() as s:
        who = {e.to_status: s.get(Person, e.actor_id).telegram_id if e.actor_id else None for e in ticket.events
               if e.kind == "status"}
    assert who[TicketStatus.claimed] == MEMBER and who[TicketStatus.resolved] == SECRETARY
    assert who[TicketStatus.closed] == resident
    assert all(e.at is not None for e in ticket.events)
    assert [e.at for e in ticket.events] == sorted(e.at for e in ticket.events)


def test_non_member_and_forged_presses_are_refused(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000002

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里5号楼")
            await j.say(resident, "5号楼楼道里堆满了纸箱子，过不去人")
            await j.press(resident, resident, t("report.button_confirm"))
            refused = await j.press(OUTSIDER, BRANCH_CHAT, "领单")
            assert refused and t("ticket.claimed_toast") not in refused
            message, _ = j.find_button(BRANCH_CHAT, "领单")
            forged = await j.step(j.updates.callback_query(MEMBER, "t:claim:1", message), MEMBER)
            answers = [c.params.get("text") for c in j.fake.calls_to("answerCallbackQuery")]
            assert answers[-1] == t("button_invalid"), (forged, answers)

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.status is TicketStatus.accepted and ticket.claimed_by_id is None


def test_me_too_joins_instead_of_filing_again(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    first, second = 710000003, 710000004

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, first, "和平里社区", "和平里3号楼")
            await j.say(first, "3号楼的电梯又坏了，停在8楼不动")
            await j.press(first, first, t("report.button_confirm"))
            await bind(j, second, "和平里社区", "和平里3号楼")
            summary = await j.say(second, "3号楼电梯坏了好几天了，老人下不了楼")
            assert any("我也遇到了" in x for x in summary), summary
            await j.press(second, second, t("report.button_me_too"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, first)
    assert tickets_of(factory, second) == []
    with factory() as s:
        followers = s.scalar(select(func.count()).select_from(TicketFollower).where(TicketFollower.ticket_id == ticket.id))
    assert followers == 1


def test_category_can_be_corrected(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000005

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里8号楼")
            await j.say(resident, "8号楼门口的垃圾好几天没人收了，味道很大")
            await j.press(resident, resident, t("report.button_change_category"))
            summary = await j.press(resident, resident, "其他")
            assert any("类别：其他" in x for x in summary), summary
            await j.press(resident, resident, t("report.button_confirm"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.category_code == "other"


def test_cancel_in_the_middle_files_nothing(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000006  # not bound: the bot must ask where

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            asked = await j.say(resident, "路灯坏了好几个，晚上黑乎乎的")
            assert any(t("report.ask_place")[:8] in x for x in asked), asked
            cancelled = await j.say(resident, "取消")
            assert t("report.cancelled") in cancelled, cancelled

    asyncio.run(scenario())
    assert tickets_of(factory, resident) == []


def test_emergency_numbers_first_then_urgent_ticket(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000007

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里6号楼")
            replies = await j.say(resident, "快来人啊6号楼2单元着火了")
            assert "119" in replies[0], replies
            assert any("紧急" in x for x in j.texts(BRANCH_CHAT)), j.texts(BRANCH_CHAT)[-2:]
            assert any("紧急" in x for x in j.texts(ADMIN)), j.texts(ADMIN)

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.urgent and ticket.category_code == "emergency"


def test_out_of_scope_and_traditional(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000008

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里9号楼")
            referral = await j.say(resident, "我的养老金这个月怎么少发了")
            assert any("12345" in x for x in referral), referral
            summary = await j.say(resident, "9號樓樓下有人天天遛狗不牽繩，還隨地大小便")
            assert any("宠物" in x for x in summary), summary

    asyncio.run(scenario())
    assert tickets_of(factory, resident) == []


def test_photo_with_caption_is_one_report(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 710000009

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里4号楼")
            summary = await j.photo(resident, "photo-dumped-sofa", caption="4号楼门口的垃圾桶满了好几天没人清，臭得很")
            assert any("照片：1张" in x and "4号楼" in x for x in summary), summary
            assert t("report.photo_kept") not in summary
            await j.press(resident, resident, t("report.button_confirm"))

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.photo_file_ids == ["photo-dumped-sofa"]
