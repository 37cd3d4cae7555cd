"""Open questions and buttons survive a restart of the bot: each step below runs on a fresh
Application built on the same database (and the same fake Telegram, which keeps the chats),
as after a crash or a deploy. Nothing of the conversation is in the process any more: the
buttons' data is in `buttons`, the open question in `prompts` (core/messaging/buttons.py, core/messaging/prompts.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.duties import events
from core.messages import t
from core.messaging import prompts as prompt_kinds
from core.models import (
    Attendance,
    AttendanceStatus,
    Branch,
    Broadcast,
    BroadcastState,
    Building,
    EventKind,
    EventOccurrence,
    InboxMessage,
    IssuedButton,
    Person,
    Ticket,
    TicketStatus,
    utcnow,
)
from core.people import residents
from tests.app.journey import Journey, journey
from tests.app.telegram_fake import FakeTelegram
from tests.app.test_permissions import BRANCH_CHAT, MEMBER, SECRETARY, new_ticket

TZ = ZoneInfo("Asia/Shanghai")

NO_RASA = "http://127.0.0.1:9"  # a note sent to Rasa would wait in the inbox: none may
RESIDENT = 730_000_001


def inbox_size(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(InboxMessage)) or 0


def kind_of(j: Journey, user: int) -> str | None:
    asked = j.prompt(user)
    return asked.kind if asked is not None else None


def test_a_ticket_note_asked_before_a_restart_is_the_note_after_it(demo_factory: sessionmaker[Session]) -> None:
    factory, fake = demo_factory, FakeTelegram()
    ticket_id = new_ticket(factory)

    async def before() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            await j.drain()  # the card reaches the branch group
            assert any(t("ticket.claimed_toast") in x for x in await j.press(MEMBER, BRANCH_CHAT, "领单"))
            asked = await j.press(SECRETARY, BRANCH_CHAT, "办结")
            assert any("办结说明" in x for x in asked), asked
            assert kind_of(j, SECRETARY) == prompt_kinds.NOTE

    async def after() -> None:
        async with journey(factory, NO_RASA, fake) as j:  # a new process: nothing in memory
            done = await j.say(SECRETARY, "已联系车主挪车，消防通道已畅通")
            assert t("ticket.resolve_done") in done, done
            assert j.prompt(SECRETARY) is None

    asyncio.run(before())
    asyncio.run(after())
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is TicketStatus.resolved
        assert any(e.note == "已联系车主挪车，消防通道已畅通" for e in ticket.events)
    assert inbox_size(factory) == 0  # not filed as a new report


def test_a_leave_reason_asked_before_a_restart_is_the_reason_after_it(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory, fake = sqlite_demo_factory, FakeTelegram()
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        secretary = s.scalars(select(Person).where(Person.telegram_id == SECRETARY)).one()
        event = events.create_event(s, secretary, branch_id=branch.id, kind=EventKind.study, title="重启后请假",
                                    place="社区党群服务中心201", starts_at=utcnow() + timedelta(days=2), notify=False, tz=TZ.key)
        occurrence = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()

    async def before() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            await j.say(MEMBER, "/duties")
            asked = await j.press(MEMBER, MEMBER, f"1. {t('duty.button_leave')}")
            assert any("请假原因" in x for x in asked), asked
            assert kind_of(j, MEMBER) == prompt_kinds.LEAVE

    async def after() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            done = await j.say(MEMBER, "要去医院陪老人看病")
            assert any("已请假" in x and "重启后请假" in x for x in done), done

    asyncio.run(before())
    asyncio.run(after())
    with factory() as s:
        row = s.scalars(select(Attendance).where(Attendance.occurrence_id == occurrence)).one()
        assert row.status is AttendanceStatus.leave and row.reason == "要去医院陪老人看病"
    assert inbox_size(factory) == 0


def test_an_unfinished_binding_goes_on_after_restarts(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """/start and a community pressed; restart; the place typed is taken as the place (not a
    report); restart; the consent button of the old process's message binds."""
    factory, fake = sqlite_demo_factory, FakeTelegram()

    async def first() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            assert await j.say(RESIDENT, "/start") == [t("bind.welcome")]
            assert await j.press(RESIDENT, RESIDENT, "和平里社区") == [t("bind.pick_building")]
            assert j.prompt(RESIDENT) == prompt_kinds.Asked(prompt_kinds.BINDING, {"step": "building"})

    async def second() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            asked = await j.say(RESIDENT, "和平里7号楼")
            assert any(t("bind.consent", place="")[:4] in x and "7号楼" in x for x in asked), asked
            assert j.prompt(RESIDENT) == prompt_kinds.Asked(prompt_kinds.BINDING, {"step": "consent"})

    async def third() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            done = await j.press(RESIDENT, RESIDENT, t("bind.button_agree"))
            assert any(t("bind.consent_yes") in x for x in done), done
            # the binding is over; the open question now is the phone (share-contact button)
            assert t("phone.ask") in done
            assert j.prompt(RESIDENT) == prompt_kinds.Asked(prompt_kinds.PHONE, {})

    asyncio.run(first())
    asyncio.run(second())
    asyncio.run(third())
    with factory() as s:
        person = s.scalars(select(Person).where(Person.telegram_id == RESIDENT)).one()
        building = s.get(Building, person.building_id)
        assert building is not None and "7号楼" in building.address and person.contact_consent
    assert inbox_size(factory) == 0


def test_an_unfinished_broadcast_goes_on_after_restarts(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """/broadcast and its text; restart; the audience and the options pressed on the old
    process's messages; restart; 定时发送; restart; the time typed schedules it."""
    factory, fake = sqlite_demo_factory, FakeTelegram()

    async def compose() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            await j.say(SECRETARY, "/broadcast")
            assert await j.say(SECRETARY, "本周六上午停水，请提前储水。") == [t("broadcast.ask_audience")]

    async def options() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            members = next(b["text"] for b in j.fake.last_keyboard(SECRETARY) if "党员" in b["text"])
            await j.press(SECRETARY, SECRETARY, members)
            await j.press(SECRETARY, SECRETARY, t("broadcast.button_essential_no"))
            preview = await j.press(SECRETARY, SECRETARY, t("broadcast.button_read_no"))
            assert any("本周六上午停水" in x and "收件人：7 人" in x for x in preview), preview

    async def later() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            asked = await j.press(SECRETARY, SECRETARY, t("broadcast.button_later"))
            assert t("broadcast.ask_time") in asked, asked

    async def when() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            done = await j.say(SECRETARY, "明天上午9点")
            assert any(x.startswith("已定时") and "7 人" in x for x in done), done
            assert j.prompt(SECRETARY) is None

    for step in (compose, options, later, when):
        asyncio.run(step())
    with factory() as s:
        [broadcast] = s.scalars(select(Broadcast)).all()
        assert broadcast.state is BroadcastState.queued and broadcast.scheduled_at is not None
        assert broadcast.text == "本周六上午停水，请提前储水。"
    assert inbox_size(factory) == 0


def test_a_card_button_pressed_after_a_restart_works_and_forged_tokens_do_not(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory, fake = sqlite_demo_factory, FakeTelegram()
    ticket_id = new_ticket(factory)

    async def before() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            await j.drain()  # the card, with its buttons, reaches the branch group

    async def after() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            message, data = j.find_button(BRANCH_CHAT, "领单")
            assert data.startswith("b:")
            forged = data[:-1] + ("A" if data[-1] != "A" else "B")
            answers = len(fake.calls_to("answerCallbackQuery"))
            await j.step(j.updates.callback_query(MEMBER, forged, message), MEMBER)
            assert [c.params.get("text") for c in fake.calls_to("answerCallbackQuery")[answers:]] == [
                t("button_invalid")]
            assert any(t("ticket.claimed_toast") in x for x in await j.press(MEMBER, BRANCH_CHAT, "领单"))

    asyncio.run(before())
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(IssuedButton)) >= 5  # 领单 办结 上报社区 退回 联系人
    asyncio.run(after())
    with session_scope(factory) as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is TicketStatus.claimed
        assert ticket.claimed_by_id == residents.person_by_telegram(s, MEMBER).id  # type: ignore[union-attr]
