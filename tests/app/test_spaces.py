"""共享空间 (/yuyue) through the real Application (fake Telegram), on a set clock (Monday
2026-12-07 08:00 in Asia/Shanghai): a resident books the 活动室 by buttons and two people take
the same slot (the second is refused with the next free slots, and books one of them); over the
capacity, a closed day typed, outside the opening hours; a branch books the 会议室 that needs
approval (the manager's 批准 / 拒绝 with a reason, a non-manager refused, the pending slot held);
a resident trying the party-only room, a newcomer, a 双报到 liaison booking for their unit;
我的预约 and 取消 (refused within the cutoff); no-shows recorded by the manager up to the bar;
the reminders 24 h and 1 h before, once each; sessions and shifts planned in a space book it
(a conflict tells the secretary, the session still plans); the figures in `gridbot stats`; the
registry's spaces and its FILE:LINE errors."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.baodao import registration
from core.db import session_scope
from core.duties import events, plan, recurrence, shifts
from core.models import (
    AuditEntry,
    Booking,
    BookingSource,
    BookingStatus,
    Event,
    EventOccurrence,
    OutboxMessage,
    Person,
    Shift,
    Space,
    SpaceManager,
)
from core.registry.importer import ImportFailed, import_registry
from core.scheduler import DutyScheduler
from core.spaces import access, booking, clock, figures
from core.spaces.rules import Rules
from tests.app.journey import Journey, journey
from tests.app.test_rates import gridbot

TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
MONDAY = datetime(2026, 12, 7, 8, 0, tzinfo=TZ)  # the clock the tests start at
SECRETARY, MEMBER = 700000001, 700000002  # P-0001 secretary, P-0002 member of BR-HPL-01 (G-HPL-01)
ADMIN = 700000069  # P-0069, community admin of 和平里社区, manager of 党群服务中心会议室 (SP-HPL-MR)
WORKER = 700000061  # P-0061, grid worker, manager of 一号楼活动室 (SP-HPL-AR)
RESIDENT = 700000071  # P-0071, lives in G-HPL-01
NEIGHBOUR = 700000072  # P-0072, lives in G-HPL-01
LIAISON = 700000073  # P-0073, lives in G-HPL-01; made a 双报到 liaison below
NEWCOMER = 830_000_301  # never sent /start


class Frozen:
    """The spaces clock (core.spaces.clock), moved by hand."""

    def __init__(self) -> None:
        self.at = MONDAY.astimezone(timezone.utc)

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at.astimezone(timezone.utc)


@pytest.fixture()
def frozen(monkeypatch: pytest.MonkeyPatch) -> Frozen:
    f = Frozen()
    monkeypatch.setattr(clock, "now", f)
    return f


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def space(s: Session, code: str) -> Space:
    return s.scalars(select(Space).where(Space.code == code)).one()


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def press_as(j: Journey, user_id: int, chat_id: int, title: str) -> str:
    """Press a button of `chat_id`'s message as someone else (a forwarded card); the alert."""
    message, data = j.find_button(chat_id, title)
    before = len(j.fake.calls_to("answerCallbackQuery"))
    await j.step(j.updates.callback_query(user_id, data, message), user_id)
    return str(j.fake.calls_to("answerCallbackQuery")[before:][-1].params.get("text") or "")


async def to_purpose(j: Journey, user: int, room: str, day: str, slot: str) -> list[str]:
    """/yuyue → the room → the day → the slot: the question for the purpose."""
    await j.say(user, "/yuyue")
    await j.press(user, user, room)
    await j.press(user, user, day)
    return await j.press(user, user, slot)


def bookings(factory: sessionmaker[Session]) -> list[Booking]:
    with session_scope(factory) as s:
        return list(s.scalars(select(Booking).order_by(Booking.starts_at, Booking.id)))


def make_liaison(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        row = registration.submit(s, who(s, LIAISON), organisation="和平医院党委", work_unit="和平医院", tags=[])
        registration.decide(s, who(s, SECRETARY), row.id, approve=True)


def test_book_by_buttons_and_the_same_slot_twice(sqlite_demo_factory: sessionmaker[Session],
                                                 frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            [menu] = await j.say(RESIDENT, "/yuyue")
            assert "共享空间" in menu
            assert keyboard(j, RESIDENT) == ["党群服务中心会议室", "一号楼活动室", "邻里书吧", "我的预约"]
            [card] = await j.press(RESIDENT, RESIDENT, "一号楼活动室")
            assert "可容纳：30人" in card and "每天 09:00-21:00" in card and "乒乓球台" in card, card
            days = keyboard(j, RESIDENT)
            assert days[:3] == ["12月7日 周一", "12月8日 周二", "12月9日 周三"] and days[-1] == "取消", days
            [slots] = await j.press(RESIDENT, RESIDENT, "12月8日 周二")
            assert "选一个空闲时段" in slots and keyboard(j, RESIDENT)[:2] == ["09:00-10:00", "10:00-11:00"]
            # both pick 10:00 on Tuesday; the resident finishes first
            asked = await j.press(RESIDENT, RESIDENT, "10:00-11:00")
            assert "请写用途" in asked[-1] and "12月8日 周二 10:00-11:00" in asked[-1], asked
            await to_purpose(j, NEIGHBOUR, "一号楼活动室", "12月8日 周二", "10:00-11:00")
            [how_many] = await j.say(RESIDENT, "读书分享会")
            assert "最多30人" in how_many
            [booked] = await j.say(RESIDENT, "12")
            assert "预约成功" in booked and "一号楼活动室 · 12月8日（周二）10:00-11:00 · 读书分享会 · 12人" in booked, booked
            await j.say(NEIGHBOUR, "棋牌活动")
            [too_many] = await j.say(NEIGHBOUR, "50人")  # over the capacity: refused and asked again
            assert "最多容纳30人" in too_many, too_many
            [taken] = await j.say(NEIGHBOUR, "8")
            assert "已经被预约了" in taken and "最近的空闲时段" in taken, taken
            assert keyboard(j, NEIGHBOUR)[:2] == ["12月8日 周二 11:00-12:00", "12月8日 周二 12:00-13:00"]
            [second] = await j.press(NEIGHBOUR, NEIGHBOUR, "12月8日 周二 11:00-12:00")
            assert "预约成功" in second and "11:00-12:00 · 棋牌活动 · 8人" in second, second
            # the taken slot is no longer offered
            await j.say(NEIGHBOUR, "/yuyue")
            await j.press(NEIGHBOUR, NEIGHBOUR, "一号楼活动室")
            await j.press(NEIGHBOUR, NEIGHBOUR, "12月8日 周二")
            assert keyboard(j, NEIGHBOUR)[:2] == ["09:00-10:00", "12:00-13:00"], keyboard(j, NEIGHBOUR)
            # 我的预约
            await j.say(RESIDENT, "/yuyue")
            [mine] = await j.press(RESIDENT, RESIDENT, "我的预约")
            assert "读书分享会" in mine and "已确认" in mine and "棋牌活动" not in mine, mine
            assert keyboard(j, RESIDENT) == ["取消 12月8日 周二 10:00-11:00"]

    asyncio.run(scenario())
    rows = bookings(factory)
    assert [(r.status, r.source, r.booked_as, r.people) for r in rows] == [
        (BookingStatus.confirmed, BookingSource.chat, "resident", 12),
        (BookingStatus.confirmed, BookingSource.chat, "resident", 8)]
    assert rows[0].ends_at == rows[1].starts_at  # one after the other, never overlapping
    with session_scope(factory) as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "space.book")) is not None


def test_closed_days_opening_hours_and_typed_days(sqlite_demo_factory: sessionmaker[Session],
                                                  frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(RESIDENT, "/yuyue")
            [card] = await j.press(RESIDENT, RESIDENT, "邻里书吧")
            assert "周二至周日 09:00-18:00" in card, card
            assert "12月7日 周一" not in keyboard(j, RESIDENT)  # closed on Mondays: not offered
            [closed] = await j.say(RESIDENT, "今天")  # typed: Monday
            assert "这天不开放" in closed and "周二至周日 09:00-18:00" in closed, closed
            [slots] = await j.say(RESIDENT, "明天")
            assert "12月8日 周二" in slots and keyboard(j, RESIDENT)[:2] == ["09:00-11:00", "11:00-13:00"], slots
            await j.say(RESIDENT, "/yuyue")
            await j.press(RESIDENT, RESIDENT, "一号楼活动室")
            [unknown] = await j.say(RESIDENT, "随便")
            assert "没看懂是哪天" in unknown
            [slots] = await j.say(RESIDENT, "12月9日")
            assert "12月9日 周三" in slots and keyboard(j, RESIDENT)[0] == "09:00-10:00", slots

    asyncio.run(scenario())
    with session_scope(factory) as s:  # outside the hours, the way the command centre's form could ask
        room = space(s, "SP-HPL-AR")
        early = datetime(2026, 12, 8, 7, 0, tzinfo=TZ)
        with pytest.raises(NotAllowed, match="不在一号楼活动室的开放时间内"):
            booking.book(s, who(s, RESIDENT), room.id, start=early, end=early + timedelta(hours=1), purpose="晨练",
                         people=5, source=BookingSource.centre, rules=Rules(), tz=TZ, now=frozen())
        late = datetime(2026, 12, 8, 20, 30, tzinfo=TZ)
        with pytest.raises(NotAllowed, match="开放时间内"):
            booking.book(s, who(s, RESIDENT), room.id, start=late, end=late + timedelta(hours=1), purpose="晚会",
                         people=5, source=BookingSource.centre, rules=Rules(), tz=TZ, now=frozen())
        with pytest.raises(NotAllowed, match="最多只能预约30天以内"):
            far = datetime(2027, 2, 1, 10, 0, tzinfo=TZ)
            booking.book(s, who(s, RESIDENT), room.id, start=far, end=far + timedelta(hours=1), purpose="远",
                         people=5, source=BookingSource.centre, rules=Rules(), tz=TZ, now=frozen())


def test_approval_by_the_manager(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(SECRETARY, "/yuyue")
            [card] = await j.press(SECRETARY, SECRETARY, "党群服务中心会议室")
            assert "需管理员审批" in card and "可预约：党组织、单位" in card, card
            await j.press(SECRETARY, SECRETARY, "12月9日 周三")
            assert keyboard(j, SECRETARY)[0] == "08:30-09:30"  # slots start at the opening time
            await j.press(SECRETARY, SECRETARY, "18:30-19:30")
            await j.say(SECRETARY, "支部党员大会")
            [too_many] = await j.say(SECRETARY, "25")
            assert "最多容纳20人" in too_many
            [pending] = await j.say(SECRETARY, "15")
            assert "等场地管理员审批" in pending and "待审批" in pending, pending
            [ask] = j.texts(ADMIN)
            assert "【场地预约待审批】" in ask and "和平里第一网格党支部" in ask and "15人" in ask, ask
            assert keyboard(j, ADMIN) == ["批准", "拒绝"]
            # the pending booking holds its slot
            await j.say(MEMBER, "/yuyue")
            await j.press(MEMBER, MEMBER, "党群服务中心会议室")
            await j.press(MEMBER, MEMBER, "12月9日 周三")
            assert "18:30-19:30" not in keyboard(j, MEMBER) and "17:30-18:30" in keyboard(j, MEMBER)
            # only a manager decides
            refused = await press_as(j, MEMBER, ADMIN, "批准")
            assert "不是党群服务中心会议室的管理员" in refused, refused
            card, data = j.find_button(ADMIN, "批准")
            approved = await j.press(ADMIN, ADMIN, "批准")
            assert any("已批准" in x for x in approved) and keyboard(j, ADMIN) == [], approved
            assert "已批准 ✅" in j.texts(SECRETARY)[-1] and "12月9日（周三）18:30-19:30" in j.texts(SECRETARY)[-1]
            before = len(j.fake.calls_to("answerCallbackQuery"))
            await j.step(j.updates.callback_query(ADMIN, data, card), ADMIN)  # the card as it was
            again = str(j.fake.calls_to("answerCallbackQuery")[before:][-1].params.get("text"))
            assert "已经处理过了（已确认）" in again, again
            # the second one is refused, with the reason the secretary hears
            await to_purpose(j, SECRETARY, "党群服务中心会议室", "12月10日 周四", "08:30-09:30")
            await j.say(SECRETARY, "支委会")
            await j.say(SECRETARY, "6")
            await j.press(ADMIN, ADMIN, "拒绝")
            assert "请写拒绝的理由" in j.texts(ADMIN)[-1]
            [done] = await j.say(ADMIN, "当天上午有区里检查")
            assert "已拒绝" in done
            told = j.texts(SECRETARY)[-1]
            assert "没有批准" in told and "当天上午有区里检查" in told, told

    asyncio.run(scenario())
    rows = bookings(factory)
    assert [(r.status, r.organisation) for r in rows] == [(BookingStatus.confirmed, "和平里第一网格党支部"),
                                                           (BookingStatus.refused, "和平里第一网格党支部")]
    assert rows[1].reason == "当天上午有区里检查"
    with session_scope(factory) as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("space.%"))))
        assert {"space.book", "space.approve", "space.refuse"} <= actions


def test_who_may_book_what(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen) -> None:
    factory = sqlite_demo_factory
    make_liaison(factory)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(RESIDENT, "/yuyue")
            refused = await j.press(RESIDENT, RESIDENT, "党群服务中心会议室")
            assert any("只接受党组织、单位预约" in x for x in refused), refused
            # a newcomer sees every space (with its community) and is told how to book
            await j.say(NEWCOMER, "/yuyue")
            assert "和平里社区·一号楼活动室" in keyboard(j, NEWCOMER)
            assert "青年湖社区·党群服务中心会议室" in keyboard(j, NEWCOMER)
            refused = await j.press(NEWCOMER, NEWCOMER, "和平里社区·一号楼活动室")
            assert any("请先发送 /start" in x for x in refused), refused
            # a 双报到 liaison books the 会议室 for their unit
            await to_purpose(j, LIAISON, "党群服务中心会议室", "12月8日 周二", "13:30-14:30")
            await j.say(LIAISON, "单位党建联建")
            [pending] = await j.say(LIAISON, "10")
            assert "等场地管理员审批" in pending
            assert "和平医院" in j.texts(ADMIN)[-1], j.texts(ADMIN)
            # the secretary of a 和平里 branch may not book 青年湖's room
        with session_scope(factory) as s:
            qnh = space(s, "SP-QNH-MR")
            with pytest.raises(NotAllowed, match="只接受党组织、单位预约"):
                access.capacity_for(s, who(s, SECRETARY), qnh)
            assert access.capacities(s, who(s, ADMIN), space(s, "SP-HPL-MR")) == [
                access.Capacity("party_org", "和平里社区党委")]
            assert access.capacities(s, who(s, LIAISON), space(s, "SP-HPL-BK")) == [access.Capacity("resident", None)]

    asyncio.run(scenario())
    [row] = bookings(factory)
    assert (row.booked_as, row.organisation, row.status) == ("enterprise", "和平医院", BookingStatus.pending)


def test_cancel_until_the_cutoff(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            for day, slot, purpose in (("12月7日 周一", "09:00-10:00", "晨读"), ("12月8日 周二", "10:00-11:00", "合唱")):
                await to_purpose(j, RESIDENT, "一号楼活动室", day, slot)
                await j.say(RESIDENT, purpose)
                assert "预约成功" in (await j.say(RESIDENT, "6"))[-1]
            await j.say(RESIDENT, "/yuyue")
            await j.press(RESIDENT, RESIDENT, "我的预约")
            assert keyboard(j, RESIDENT) == ["取消 12月7日 周一 09:00-10:00", "取消 12月8日 周二 10:00-11:00"]
            # 08:00 now: one hour before the first, inside the 2 h cutoff
            late = await j.press(RESIDENT, RESIDENT, "取消 12月7日 周一 09:00-10:00")
            assert any("开始前2小时内不能取消" in x for x in late), late
            [cancelled] = await j.press(RESIDENT, RESIDENT, "取消 12月8日 周二 10:00-11:00")
            assert "已取消：一号楼活动室" in cancelled and "合唱" in cancelled, cancelled
            assert keyboard(j, RESIDENT) == ["取消 12月7日 周一 09:00-10:00"]
            # freed: the slot is offered again
            await j.say(NEIGHBOUR, "/yuyue")
            await j.press(NEIGHBOUR, NEIGHBOUR, "一号楼活动室")
            await j.press(NEIGHBOUR, NEIGHBOUR, "12月8日 周二")
            assert "10:00-11:00" in keyboard(j, NEIGHBOUR)

    asyncio.run(scenario())
    assert [r.status for r in bookings(factory)] == [BookingStatus.confirmed, BookingStatus.cancelled]
    with session_scope(factory) as s:
        [first, _] = s.scalars(select(Booking).order_by(Booking.starts_at)).all()
        with pytest.raises(NotAllowed, match="这不是您的预约"):
            booking.cancel(s, who(s, NEIGHBOUR), first.id, rules=Rules(), now=frozen())
        with pytest.raises(NotAllowed, match="开始前0.5小时内"):  # the setting
            booking.cancel(s, who(s, RESIDENT), first.id, rules=Rules(cancel_hours=0.5),
                           now=first.starts_at - timedelta(minutes=20))
        assert booking.cancel(s, who(s, RESIDENT), first.id, rules=Rules(cancel_hours=0.5),
                              now=first.starts_at - timedelta(minutes=40)).status is BookingStatus.cancelled


def test_no_shows_up_to_the_bar(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            for day in ("12月8日 周二", "12月9日 周三"):
                await to_purpose(j, RESIDENT, "一号楼活动室", day, "10:00-11:00")
                await j.say(RESIDENT, "乒乓球")
                await j.say(RESIDENT, "4")
            await j.say(WORKER, "/yuyue")
            assert "管理预约" in keyboard(j, WORKER)
            [nothing] = await j.press(WORKER, WORKER, "管理预约")
            assert "没有待审批的预约" in nothing  # nothing has started yet
            frozen.set(datetime(2026, 12, 8, 10, 20, tzinfo=TZ))
            [started] = await j.press(WORKER, WORKER, "管理预约")
            assert "已开始的预约" in started and "戴春生（居民）" in started, started
            refused = await press_as(j, RESIDENT, WORKER, "未到")
            assert "不是一号楼活动室的管理员" in refused
            [recorded] = await j.press(WORKER, WORKER, "未到")
            assert "已记为未到" in recorded
            told = j.texts(RESIDENT)[-1]
            assert "被管理员记为未到" in told and "90天内第1次" in told and "不能预约" not in told, told
            frozen.set(datetime(2026, 12, 9, 11, 30, tzinfo=TZ))
            await j.press(WORKER, WORKER, "管理预约")
            await j.press(WORKER, WORKER, "未到")
            told = j.texts(RESIDENT)[-1]
            assert "90天内第2次" in told and "2027年" not in told and "1月8日（周五）11:30之前您不能预约" in told, told
            await j.say(RESIDENT, "/yuyue")
            barred = await j.press(RESIDENT, RESIDENT, "邻里书吧")
            assert any("90天内已有2次预约未到，1月8日（周五）11:30之前不能预约" in x for x in barred), barred
            frozen.set(datetime(2027, 1, 8, 12, 0, tzinfo=TZ))  # the bar is over
            [card] = await j.press(RESIDENT, RESIDENT, "邻里书吧")
            assert "可容纳：8人" in card

    asyncio.run(scenario())
    assert [r.status for r in bookings(factory)] == [BookingStatus.no_show, BookingStatus.no_show]
    with session_scope(factory) as s:
        person = who(s, RESIDENT)
        at = datetime(2026, 12, 9, 12, 0, tzinfo=TZ)
        assert booking.ban_until(s, person.id, at, Rules(no_show_limit=3)) is None  # the setting
        assert booking.ban_until(s, person.id, at, Rules(ban_days=7)) == datetime(2026, 12, 16, 11, 30, tzinfo=TZ)


def test_no_double_booking_under_concurrency(demo_factory: sessionmaker[Session]) -> None:
    """Six residents press at once for overlapping hours of the same room (three for the same
    start): one booking, five refusals, on SQLite and PostgreSQL. The same start twice is refused
    by the database itself, lock or not (the partial unique index)."""
    factory = demo_factory
    with session_scope(factory) as s:
        room_id = space(s, "SP-HPL-AR").id
        residents = [s.scalars(select(Person.id).where(Person.code == f"P-00{n}")).one() for n in range(71, 77)]
    barrier = threading.Barrier(len(residents))
    outcomes: list[str] = []
    minutes = (0, 0, 0, 20, 40, 50)

    def attempt(person_id: int, offset: int) -> None:
        start = datetime(2026, 12, 8, 10, offset, tzinfo=TZ)
        barrier.wait()
        try:
            with session_scope(factory) as s:
                booking.book(s, s.get(Person, person_id), room_id, start=start, end=start + timedelta(hours=1),
                             purpose="同时预约", people=3, source=BookingSource.chat, rules=Rules(), tz=TZ, now=MONDAY)
            outcomes.append("booked")
        except booking.Taken:
            outcomes.append("taken")
        except Exception as exc:  # noqa: BLE001 - anything else fails the test below
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=attempt, args=args) for args in zip(residents, minutes, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["booked"] + ["taken"] * 5, outcomes
    [held] = [b for b in bookings(factory) if b.status is BookingStatus.confirmed]
    with pytest.raises(IntegrityError), session_scope(factory) as s:  # past the lock: the index
        s.add(Booking(space_id=room_id, person_id=residents[0], booked_as="resident", starts_at=held.starts_at,
                      ends_at=held.ends_at, purpose="绕过", people=1, status=BookingStatus.pending,
                      source=BookingSource.centre, created_at=MONDAY))
        s.flush()


def leader_round(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """The scheduler leader's 共享空间 round (DutyScheduler.spaces), not started as a leader."""
    scheduler = DutyScheduler(factory.kw["bind"].url.render_as_string(hide_password=False), tz=TZ)
    try:
        return scheduler.spaces(now)
    finally:
        scheduler.engine.dispose()


def test_reminders_24h_and_1h_once_each(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await to_purpose(j, RESIDENT, "一号楼活动室", "12月8日 周二", "19:00-20:00")
            await j.say(RESIDENT, "广场舞排练")
            await j.say(RESIDENT, "10")
            # a booking made 3 h ahead gets the 1 h reminder only
            frozen.set(datetime(2026, 12, 8, 13, 30, tzinfo=TZ))
            await to_purpose(j, NEIGHBOUR, "一号楼活动室", "12月8日 周二", "16:00-17:00")
            await j.say(NEIGHBOUR, "手工课")
            await j.say(NEIGHBOUR, "5")
            start = datetime(2026, 12, 8, 19, 0, tzinfo=TZ)
            before = len(j.texts(RESIDENT))
            assert leader_round(factory, start - timedelta(hours=24, minutes=1))["reminded"] == 0  # not yet
            assert leader_round(factory, start - timedelta(hours=23, minutes=59))["reminded"] == 1
            assert leader_round(factory, start - timedelta(hours=23, minutes=58))["reminded"] == 0  # once
            await j.drain()
            [day_before] = j.texts(RESIDENT)[before:]
            assert "【预约提醒】明天12月8日（周二）19:00-20:00" in day_before and "广场舞排练" in day_before
            assert "开始前2小时以前取消" in day_before, day_before
            counts = leader_round(factory, datetime(2026, 12, 8, 15, 30, tzinfo=TZ))  # the neighbour's 1 h one
            assert counts["reminded"] == 1
            counts = leader_round(factory, start - timedelta(minutes=59))
            assert counts == {"reminded": 1, "done": 1, "expired": 0}  # the neighbour's ended at 17:00
            assert leader_round(factory, start - timedelta(minutes=30))["reminded"] == 0
            await j.drain()
            assert sum("【预约提醒】" in x for x in j.texts(RESIDENT)) == 2
            assert "1小时后" in j.texts(RESIDENT)[-1]
            assert [x for x in j.texts(NEIGHBOUR) if "【预约提醒】" in x] == [
                "【预约提醒】1小时后：12月8日（周二）16:00-17:00，一号楼活动室（手工课）。"]
            counts = leader_round(factory, start + timedelta(hours=2))
            assert counts == {"reminded": 0, "done": 1, "expired": 0}  # the resident's

    asyncio.run(scenario())
    assert [r.status for r in bookings(factory)] == [BookingStatus.done, BookingStatus.done]
    with session_scope(factory) as s:
        keys = list(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like("space-remind:%"))))
        assert len(keys) == 3 and len(set(keys)) == 3, keys


def test_sessions_and_shifts_book_their_space(sqlite_demo_factory: sessionmaker[Session], frozen: Frozen,
                                              tmp_path: Path) -> None:
    factory = sqlite_demo_factory
    now = frozen()
    with session_scope(factory) as s:  # a resident got the 活动室 first on Saturday 09:00
        booking.book(s, who(s, RESIDENT), space(s, "SP-HPL-AR").id, start=datetime(2026, 12, 12, 9, 0, tzinfo=TZ),
                     end=datetime(2026, 12, 12, 10, 0, tzinfo=TZ), purpose="太极", people=10,
                     source=BookingSource.chat, rules=Rules(), tz=TZ, now=now)
    plan_file = tmp_path / "plan.yml"
    plan_file.write_text(
        "- kind: 学习\n  title: 读书会\n  place: 党群服务中心会议室\n  when: 12月10日晚上7点\n"
        "- kind: 党小组会\n  title: 第一党小组会\n  place: 社区 一号楼活动室\n  when: 每周三下午3点\n"
        "- kind: 执勤\n  title: 文明劝导\n  place: 小区大门\n  space: SP-HPL-AR\n  when: 12月12日上午8点半到10点半\n"
        "  places: 3\n", encoding="utf-8")
    with session_scope(factory) as s:
        lines = plan.schedule_file(s, plan_file, branch_code="BR-HPL-01", actor_code=None, now=now, tz=TZ)
    assert len(lines) == 3  # the shift plans even though its space is taken

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            conflict = [x for x in j.texts(SECRETARY) if "【场地冲突】" in x]
            assert len(conflict) == 1 and "文明劝导" in conflict[0] and "一号楼活动室" in conflict[0], conflict
            assert "09:00-10:00 居民" in conflict[0] and "活动照常安排" in conflict[0], conflict
            # a resident sees the session's hour taken
            await j.say(NEIGHBOUR, "/yuyue")
            await j.press(NEIGHBOUR, NEIGHBOUR, "一号楼活动室")
            await j.press(NEIGHBOUR, NEIGHBOUR, "12月9日 周三")
            assert "15:00-16:00" not in keyboard(j, NEIGHBOUR) and "16:00-17:00" not in keyboard(j, NEIGHBOUR)
            assert "14:00-15:00" in keyboard(j, NEIGHBOUR) and "17:00-18:00" in keyboard(j, NEIGHBOUR)
            # the secretary's 我的预约 shows them without 取消 (they follow their session)
            await j.say(SECRETARY, "/yuyue")
            [mine] = await j.press(SECRETARY, SECRETARY, "我的预约")
            assert "读书会" in mine and "第一党小组会" in mine and keyboard(j, SECRETARY) == [], mine

    asyncio.run(scenario())
    with session_scope(factory) as s:
        duty = list(s.scalars(select(Booking).where(Booking.source == BookingSource.duty).order_by(Booking.starts_at)))
        assert all(b.status is BookingStatus.confirmed and b.organisation == "和平里第一网格党支部" for b in duty)
        reading = next(b for b in duty if b.purpose == "读书会")  # approval not needed for a duty
        assert reading.space_id == space(s, "SP-HPL-MR").id
        assert reading.ends_at - reading.starts_at == timedelta(minutes=90)
        weekly = s.scalars(select(Event).where(Event.title == "第一党小组会")).one()
        meetings = [b for b in duty if b.purpose == "第一党小组会"]
        occurrences = s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == weekly.id)).all()
        assert len(meetings) == len(occurrences) >= 8  # every materialised meeting
        shift = s.scalars(select(Shift).where(Shift.title == "文明劝导")).one()
        assert shift.space_id == space(s, "SP-HPL-AR").id and not shift.cancelled
        assert s.scalar(select(Booking).where(Booking.shift_id == shift.id)) is None  # the resident's stays
        # one meeting called off frees its hour; the series moved an hour later moves the bookings
        first = min(occurrences, key=lambda o: o.starts_at)
        events.cancel_occurrence(s, first.id, who(s, SECRETARY), now=now)
        assert s.scalar(select(Booking).where(Booking.occurrence_id == first.id)).status is BookingStatus.cancelled
        events.update_event(s, weekly.id, who(s, SECRETARY), now=now,
                            starts_at=weekly.starts_at + timedelta(hours=1), notify=False)
        live = s.scalars(select(Booking).where(Booking.source == BookingSource.duty, Booking.purpose == "第一党小组会",
                                               Booking.status == BookingStatus.confirmed)).all()
        assert live and all(b.starts_at.astimezone(TZ).hour == 16 for b in live)
        # the resident gives the Saturday hour up
        taiji = s.scalars(select(Booking).where(Booking.purpose == "太极")).one()
        booking.cancel(s, who(s, RESIDENT), taiji.id, rules=Rules(), now=now)
    leader_round(factory, now)  # the leader's next round books it for the shift
    with session_scope(factory) as s:
        shift = s.scalars(select(Shift).where(Shift.title == "文明劝导")).one()
        held_shift = s.scalars(select(Booking).where(Booking.shift_id == shift.id)).one()
        assert held_shift.status is BookingStatus.confirmed and held_shift.people == 3
        shifts.cancel_shift(s, shift.id, who(s, SECRETARY), now=now, tz=TZ)  # and cancelling the shift frees it
        assert held_shift.status is BookingStatus.cancelled
    later = now + timedelta(weeks=4)  # the leader materialises the weeks beyond, and books them
    with session_scope(factory) as s:
        recurrence.materialise_all(s, later)
    leader_round(factory, later)
    with session_scope(factory) as s:
        weekly = s.scalars(select(Event).where(Event.title == "第一党小组会")).one()
        live_occ = s.scalars(select(EventOccurrence).where(
            EventOccurrence.event_id == weekly.id, EventOccurrence.cancelled.is_(False),
            EventOccurrence.starts_at >= later)).all()
        held = {b.occurrence_id for b in s.scalars(select(Booking).where(
            Booking.source == BookingSource.duty, Booking.status == BookingStatus.confirmed))}
        assert {o.id for o in live_occ} <= held
        events.cancel_event(s, weekly.id, who(s, SECRETARY), now=later)
        assert not s.scalars(select(Booking).where(Booking.occurrence_id.in_([o.id for o in live_occ]),
                                                   Booking.status == BookingStatus.confirmed)).all()


def test_figures_in_gridbot_stats(sqlite_demo_factory: sessionmaker[Session], sqlite_engine: Engine) -> None:
    factory = sqlite_demo_factory
    now = datetime(2026, 12, 1, 8, 0, tzinfo=TZ)
    with session_scope(factory) as s:
        room = space(s, "SP-HPL-AR")
        for day, hours_long in ((2, 2), (3, 1), (4, 3)):
            start = datetime(2026, 12, day, 10, 0, tzinfo=TZ)
            booking.book(s, who(s, RESIDENT), room.id, start=start, end=start + timedelta(hours=hours_long),
                         purpose="活动", people=5, source=BookingSource.chat, rules=Rules(), tz=TZ, now=now)
        rows = s.scalars(select(Booking).order_by(Booking.starts_at)).all()
        booking.record_no_show(s, who(s, WORKER), rows[1].id, rules=Rules(), tz=TZ,
                               now=datetime(2026, 12, 3, 10, 30, tzinfo=TZ))
        start = datetime(2026, 12, 5, 10, 0, tzinfo=TZ)
        cancelled = booking.book(s, who(s, RESIDENT), room.id, start=start, end=start + timedelta(hours=1),
                                 purpose="取消的", people=5, source=BookingSource.chat, rules=Rules(), tz=TZ, now=now)
        booking.cancel(s, who(s, RESIDENT), cancelled.id, rules=Rules(), now=now)
        month = figures.per_space(s, datetime(2026, 12, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ), TZ)
    ar = next(f for f in month if f.code == "SP-HPL-AR")
    assert (ar.bookings, ar.hours, ar.no_shows, ar.cancelled) == (3, 6.0, 1, 1)
    assert ar.open_hours == 31 * 12 and ar.share == round(6 / (31 * 12), 4)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    result = gridbot(["stats", "--month", "2026-12", "--community", "C-HPL", "--json"], url)
    assert result.returncode == 0, result.stderr
    rows = {r["code"]: r for r in json.loads(result.stdout)["spaces"]}
    assert set(rows) == {"SP-HPL-MR", "SP-HPL-AR", "SP-HPL-BK"}  # only the community asked for
    assert (rows["SP-HPL-AR"]["bookings"], rows["SP-HPL-AR"]["hours"], rows["SP-HPL-AR"]["no_shows"]) == (3, 6.0, 1)
    assert rows["SP-HPL-BK"]["bookings"] == 0 and rows["SP-HPL-BK"]["open_hours"] == 27 * 9  # closed on Mondays
    table = gridbot(["stats", "--month", "2026-12"], url)
    assert table.returncode == 0 and "共享空间" in table.stdout and "SP-QNH-MR" in table.stdout
    assert "1.6%" in table.stdout  # 6 h of 372 open hours


def test_registry_spaces_and_their_errors(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    with session_scope(sqlite_demo_factory) as s:
        demo = {sp.code: sp for sp in s.scalars(select(Space))}
        assert set(demo) == {"SP-HPL-MR", "SP-HPL-AR", "SP-HPL-BK", "SP-QNH-MR"}
        assert demo["SP-HPL-MR"].needs_approval and demo["SP-HPL-MR"].bookers == ["party_org", "enterprise"]
        assert demo["SP-HPL-BK"].hours == {str(d): ["09:00", "18:00"] for d in range(1, 7)}
        managers = s.scalars(select(Person.code).join(SpaceManager, SpaceManager.person_id == Person.id)
                             .where(SpaceManager.space_id == demo["SP-HPL-MR"].id)).all()
        assert managers == ["P-0069"]
    bad = tmp_path / "spaces.yml"
    bad.write_text(
        "spaces:\n"
        "  - code: SP-X\n"
        "    community: C-HPL\n"
        "    name: 某会议室\n"
        "    kind: 会议室\n"
        "    capacity: 0\n"
        "    hours: mon-fri 09:00-08:00\n"
        "    managers: [P-9999]\n"
        "  - code: SP-Y\n"
        "    community: C-NOPE\n"
        "    name: 某活动室\n"
        "    kind: 仓库\n"
        "    capacity: 十个\n"
        "    hours: 每天九点\n"
        "    bookers: [resident, everyone]\n", encoding="utf-8")
    with session_scope(sqlite_demo_factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, [bad])
    problems = [str(p) for p in failed.value.problems]
    assert f"{bad}:2: space SP-X: capacity 0 must be 1..10000" in problems, problems
    assert f"{bad}:2: space SP-X: bad hours: '09:00-08:00' closes before it opens" in problems, problems
    assert f"{bad}:2: space SP-X: unknown person 'P-9999' in managers" in problems, problems
    assert f"{bad}:9: space SP-Y: unknown community 'C-NOPE' in community" in problems, problems
    assert any(p.startswith(f"{bad}:9: space SP-Y: unknown kind '仓库'") for p in problems), problems
    assert f"{bad}:9: space SP-Y: capacity '十个' is not a whole number" in problems, problems
    assert any(p.startswith(f"{bad}:9: space SP-Y: bad hours:") for p in problems), problems
    assert any(p.startswith(f"{bad}:9: space SP-Y: unknown bookers everyone") for p in problems), problems
    csv = tmp_path / "spaces.csv"  # a CSV file: hours with ";", lists with ";"
    csv.write_text("code,community,name,kind,capacity,hours,equipment,needs_approval,managers,bookers\n"
                   "SP-Z,C-HPL,小会议室,会议室,8,mon-fri 08:30-17:30; sat 09:00-12:00,白板;电视,是,P-0061;P-0062,\n",
                   encoding="utf-8")
    with session_scope(sqlite_demo_factory) as s:
        import_registry(s, [csv])
        row = space(s, "SP-Z")
        assert row.needs_approval and row.equipment == ["白板", "电视"] and row.bookers == list(access.BOOKERS)
        assert row.hours["5"] == ["09:00", "12:00"] and "6" not in row.hours
        assert len(s.scalars(select(SpaceManager).where(SpaceManager.space_id == row.id)).all()) == 2
