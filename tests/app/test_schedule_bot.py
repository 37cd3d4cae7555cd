"""/schedule and the changed /duties through the real Application (fake Telegram): a secretary
schedules a monthly 党小组会 and a shift in words (an unsure time is confirmed), members are
told; calling off a shift tells who signed up; a member changes an answer, cancels a sign-up
before its cutoff, sees open shifts and the tickets they claimed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import session_scope
from core.duties import attendance, events, overview, shifts, words
from core.messages import t
from core.messaging import prompts
from core.models import (
    Attendance,
    AttendanceStatus,
    Branch,
    Event,
    EventKind,
    EventOccurrence,
    Grid,
    OutboxMessage,
    Person,
    Shift,
    ShiftSignup,
    SignupStatus,
    TicketStatus,
    utcnow,
)
from core.tickets import service as tickets_service
from core.tickets.lifecycle import NewTicket
from tests.app.journey import Journey, journey

SECRETARY = 700000001  # P-0001, secretary of BR-HPL-01
MEMBER, MEMBER_2 = 700000002, 700000003  # members of BR-HPL-01
NO_RASA = "http://127.0.0.1:9"  # /schedule and /duties never reach Rasa

TRANSCRIPT: list[str] = []
TZ = get_settings().tz


def person(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def branch_id(s: Session) -> int:
    return s.scalars(select(Branch.id).where(Branch.code == "BR-HPL-01")).one()


async def said(j: Journey, user: int, text: str) -> list[str]:
    got = await j.say(user, text)
    TRANSCRIPT.extend([f"> {text}", *got])
    return got


async def pressed(j: Journey, user: int, label: str) -> list[str]:
    got = await j.press(user, user, label)
    TRANSCRIPT.extend([f"> [{label}]", *got])
    return got


def test_schedule_monthly_group_meeting_in_words(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            assert (await said(j, MEMBER, "/schedule")) == [t("schedule.not_manager")]
            assert (await said(j, SECRETARY, "/schedule"))[-1] == t("schedule.ask_kind")
            await pressed(j, SECRETARY, "党小组会")
            assert (await said(j, SECRETARY, "第一党小组学习会"))[-1] == t("schedule.ask_place")
            assert (await said(j, SECRETARY, "社区党群服务中心二楼"))[-1] == t("schedule.ask_when")
            got = await said(j, SECRETARY, "每月第一个周五晚上7点")
            assert any("每月第一个周五" in x and "19:00" in x for x in got), got
            assert got[-1] == t("schedule.ask_checkin")
            await pressed(j, SECRETARY, t("schedule.button_checkin", before=30, after=60))
            preview = await pressed(j, SECRETARY, t("schedule.mandatory_yes"))
            assert any("请确认" in x and "第一党小组学习会" in x and "社区党群服务中心二楼" in x for x in preview), preview
            done = await pressed(j, SECRETARY, t("schedule.button_confirm"))
            assert any(x.startswith("已发布：第一党小组学习会") for x in done), done
            assert j.prompt(SECRETARY) is None
            # the members were told, with 参加 / 请假 buttons
            told = [m for m in j.fake.sent_messages(MEMBER) if "新活动：第一党小组学习会" in str(m.get("text"))]
            assert told, j.texts(MEMBER)

    asyncio.run(scenario())
    with factory() as s:
        event = s.scalars(select(Event).where(Event.title == "第一党小组学习会")).one()
        assert event.kind is EventKind.group_meeting and event.rrule == "FREQ=MONTHLY;BYDAY=1FR"
        local = event.starts_at.astimezone(TZ)
        assert local.weekday() == 4 and local.day <= 7 and (local.hour, local.minute) == (19, 0)
        assert event.mandatory and event.checkin_before_minutes == 30
        # the occurrences are there for the scheduler to remind
        assert s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id,
                                                       EventOccurrence.reminders_dirty)).first() is not None


def test_schedule_shift_unsure_time_confirmed_then_called_off(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(SECRETARY, "/schedule")
            await j.press(SECRETARY, SECRETARY, "志愿执勤")
            await j.say(SECRETARY, "卡口执勤（排班测试）")
            await j.say(SECRETARY, "东门岗亭")
            bad = await j.say(SECRETARY, "随便什么时候")
            assert bad == [t("schedule.bad_when")]
            got = await j.say(SECRETARY, "下周一上午")  # no hour: read as 09:00, asked
            assert any(x.startswith("我理解为：") and "09:00–11:00" in x for x in got), got
            await j.press(SECRETARY, SECRETARY, t("schedule.button_yes"))
            assert (await j.say(SECRETARY, "两个")) == [t("schedule.bad_places")]
            await j.say(SECRETARY, "2")
            await j.press(SECRETARY, SECRETARY, t("schedule.button_cutoff", hours=24))
            done = await j.press(SECRETARY, SECRETARY, t("schedule.button_confirm"))
            assert any(x.startswith("已发布：卡口执勤（排班测试）") for x in done), done

            # a member signs up from the invitation, then the secretary calls the shift off
            await j.press(MEMBER, MEMBER, t("duty.button_signup"))
            await j.say(SECRETARY, "/schedule")
            listing = await j.press(SECRETARY, SECRETARY, t("schedule.button_manage"))
            line = next(x for x in listing[-1].splitlines() if "卡口执勤（排班测试）" in x)
            n = line.split(".")[0]
            off = await j.press(SECRETARY, SECRETARY, t("schedule.button_call_off", n=n))
            assert any(x.startswith("已取消：卡口执勤（排班测试）") for x in off), off
            assert any("卡口执勤（排班测试）" in x and "取消" in x for x in j.texts(MEMBER)[-2:]), j.texts(MEMBER)

    asyncio.run(scenario())
    with factory() as s:
        shift = s.scalars(select(Shift).where(Shift.title == "卡口执勤（排班测试）")).one()
        local = shift.starts_at.astimezone(TZ)
        assert local.weekday() == 0 and (local.hour, local.minute) == (9, 0) and shift.capacity == 2
        assert shift.cancelled and shift.cancel_cutoff_minutes == 24 * 60


def test_schedule_cancel_word_drops_the_draft(sqlite_demo_factory: sessionmaker[Session]) -> None:
    async def scenario() -> None:
        async with journey(sqlite_demo_factory, NO_RASA) as j:
            await j.say(SECRETARY, "/schedule")
            await j.press(SECRETARY, SECRETARY, "党课")
            assert (await j.say(SECRETARY, "取消")) == [t("schedule.cancelled")]
            assert j.prompt(SECRETARY) is None

    asyncio.run(scenario())
    with sqlite_demo_factory() as s:
        assert s.scalar(select(Event).where(Event.kind == EventKind.lecture, Event.place == "取消")) is None


def test_duties_change_answer_cancel_signup_open_shifts_and_claimed(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    now = utcnow()
    with session_scope(factory) as s:
        sec, member = person(s, SECRETARY), person(s, MEMBER)
        event = events.create_event(s, sec, branch_id=branch_id(s), kind=EventKind.study, title="读书会（改答复）",
                                    place="201", starts_at=now + timedelta(days=2), notify=False, tz=TZ.key)
        occ_id = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()
        attendance.rsvp(s, occ_id, member, True)
        mine = shifts.publish_shift(s, sec, title="文明劝导（可取消）", place="南门", starts_at=now + timedelta(days=3),
                                    ends_at=now + timedelta(days=3, hours=2), capacity=3, branch_id=branch_id(s),
                                    notify=False, tz=TZ)
        shifts.sign_up(s, mine.id, member)
        missed = shifts.publish_shift(s, sec, title="环境整治（有空位）", place="北区", starts_at=now + timedelta(days=4),
                                      ends_at=now + timedelta(days=4, hours=2), capacity=2, branch_id=branch_id(s),
                                      notify=False, tz=TZ)
        grid = s.scalars(select(Grid).where(Grid.code == "G-HPL-01")).one()
        ticket = tickets_service.submit_report(s, NewTicket(category_code="sanitation", description="垃圾桶满了没人清",
                                                     grid_id=grid.id, community_id=grid.community_id),
                                        tz=TZ, notify_reporter=False)
        tickets_service.claim(s, ticket.id, member)
        assert ticket.status is TicketStatus.claimed and ticket.resolve_due_at is not None
        mine_id, missed_id, ticket_number = mine.id, missed.id, ticket.number

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            listing = (await j.say(MEMBER, "/duties"))[-1]
            assert "还有空位的执勤" in listing and "环境整治（有空位）" in listing and "还差2人" in listing
            assert "我的领单" in listing and ticket_number in listing and "办结时限" in listing
            n_event = next(x for x in listing.splitlines() if "读书会（改答复）" in x).split(".")[0]
            n_shift = next(x for x in listing.splitlines() if "文明劝导（可取消）" in x).split(".")[0]
            # 参加 → 请假: the reason is asked, then the answer changes
            await j.press(MEMBER, MEMBER, f"{n_event}. {t('duty.button_change_leave')}")
            done = await j.say(MEMBER, "临时要出差")
            assert any("已请假" in x for x in done), done
            # 取消报名 before the cutoff
            got = await j.press(MEMBER, MEMBER, f"{n_shift}. {t('duty.button_cancel_signup')}")
            assert t("duty.bot.signup_cancelled") in got, got
            # the open shift, missed invitation and all
            n_open = next(x for x in listing.splitlines() if "环境整治（有空位）" in x).split(".")[0]
            assert int(n_open) > int(n_shift)  # numbered on from the member's own duties
            got = await j.press(MEMBER, MEMBER, t("duty.button_open_signup", n=n_open, title="环境整治（有空位）"))
            assert t("duty.bot.signup_done") in got, got
            # 请假 → 参加 again, from the new list
            listing = (await j.say(MEMBER, "/duties"))[-1]
            n_event = next(x for x in listing.splitlines() if "读书会（改答复）" in x).split(".")[0]
            await j.press(MEMBER, MEMBER, f"{n_event}. {t('duty.button_change_attend')}")

    asyncio.run(scenario())
    with factory() as s:
        member = person(s, MEMBER)
        row = s.scalars(select(Attendance).where(Attendance.occurrence_id == occ_id,
                                                 Attendance.person_id == member.id)).one()
        assert row.status is AttendanceStatus.attending
        status = dict(s.execute(select(ShiftSignup.shift_id, ShiftSignup.status)
                                .where(ShiftSignup.person_id == member.id)).tuples().all())
        assert status[mine_id] is SignupStatus.cancelled and status[missed_id] is SignupStatus.active
        # after the cutoff there is no 取消报名 button
        late = shifts.publish_shift(s, person(s, SECRETARY), title="夜间巡逻（已过截止）", place="西门",
                                    starts_at=now + timedelta(hours=2), ends_at=now + timedelta(hours=4),
                                    capacity=2, branch_id=branch_id(s), notify=False, tz=TZ)
        shifts.sign_up(s, late.id, member)
        payload = words.extend_payload(s, member, overview.duties_payload(s, member, tz=TZ), tz=TZ)
        data = [b["callback_data"] for row in payload.get("buttons", []) for b in row]
        assert f"sh:x:{late.id}" not in data and f"sh:w:{late.id}" in data
        s.rollback()
        assert s.scalar(select(OutboxMessage.id).limit(1)) is not None
    assert prompts.SCHEDULE in prompts.KINDS


def test_transcript_for_readme(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """Keeps the README transcript honest: the flow above produced these lines."""
    if not TRANSCRIPT:
        test_schedule_monthly_group_meeting_in_words(sqlite_demo_factory)
    assert TRANSCRIPT[0] == "> /schedule" and any(line.startswith("已发布：第一党小组学习会") for line in TRANSCRIPT)
    print("\n".join(TRANSCRIPT))


def test_schedule_change_time_tells_who_answered(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    with session_scope(factory) as s:
        event = events.create_event(s, person(s, SECRETARY), branch_id=branch_id(s), kind=EventKind.committee,
                                    title="支委会（改时间）", place="书记办公室", starts_at=utcnow() + timedelta(days=3),
                                    notify=False, tz=TZ.key)
        occ_id = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()
        attendance.rsvp(s, occ_id, person(s, MEMBER), True)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(SECRETARY, "/schedule")
            listing = await j.press(SECRETARY, SECRETARY, t("schedule.button_manage"))
            n = next(x for x in listing[-1].splitlines() if "支委会（改时间）" in x).split(".")[0]
            assert (await j.press(SECRETARY, SECRETARY, t("schedule.button_edit", n=n)))[0] == t(
                "schedule.ask_edit_when")
            done = await j.say(SECRETARY, "下下周六上午10点")
            assert any(x.startswith("已改时间：支委会（改时间）") and "10:00" in x for x in done), done
            assert any("活动有变更：支委会（改时间）" in x for x in j.texts(MEMBER)), j.texts(MEMBER)

    asyncio.run(scenario())
    with factory() as s:
        moved = s.get(EventOccurrence, occ_id)
        assert moved is not None and moved.starts_at.astimezone(TZ).hour == 10
        assert moved.starts_at.astimezone(TZ).weekday() == 5
