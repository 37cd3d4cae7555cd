"""Party members' duties through the real Application (fake Telegram): /duties, the duty
buttons (参加, 请假 with its reason, 签到, 报名), refusals shown as alerts, /report; and
"我这周有什么安排" through the real Rasa server and action server.

The tests share the stack's database (demo community) with the other stack tests; each
creates its own events and shifts with titles of its own.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import make_engine, session_scope
from core.duties import demo as demo_schedule
from core.duties import events, overview, shifts
from core.messages import t
from core.messaging import prompts
from core.models import (
    Attendance,
    AttendanceStatus,
    Branch,
    Event,
    EventKind,
    EventOccurrence,
    Person,
    ShiftSignup,
    SignupStatus,
    utcnow,
)
from tests.app.journey import Journey, journey
from tests.app.stack import Stack

TZ = ZoneInfo("Asia/Shanghai")

SECRETARY = 700000001  # P-0001, secretary of BR-HPL-01
MEMBER, MEMBER_2, MEMBER_3, MEMBER_4 = 700000002, 700000003, 700000004, 700000006  # BR-HPL-01
OUTSIDER = 700000009  # P-0009, member of BR-HPL-02
NO_RASA = "http://127.0.0.1:9"  # these tests never reach Rasa


@pytest.fixture
def factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def person(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def new_event(factory: sessionmaker[Session], title: str, starts_in: timedelta, **kw: object) -> int:
    """A one-off study session of BR-HPL-01 created by its secretary; its occurrence id."""
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        event = events.create_event(s, person(s, SECRETARY), branch_id=branch.id, kind=EventKind.study,
                                    title=title, place="社区党群服务中心201",
                                    starts_at=utcnow() + starts_in, notify=False, tz=TZ.key, **kw)  # type: ignore[arg-type]
        return s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()


def attendance(factory: sessionmaker[Session], occurrence_id: int, telegram_id: int) -> Attendance | None:
    with factory() as s:
        return s.scalars(select(Attendance).where(Attendance.occurrence_id == occurrence_id,
                                                  Attendance.person_id == person(s, telegram_id).id)).first()


def line_number(text: str, title: str) -> int:
    """The number of the /duties line that names `title`."""
    for line in text.splitlines():
        if title in line:
            match = re.match(r"(\d+)\. ", line)
            assert match, line
            return int(match.group(1))
    raise AssertionError(f"{title!r} not in {text!r}")


async def duties_text(j: Journey, user: int, title: str) -> str:
    shown = await j.say(user, "/duties")
    listing = [x for x in shown if title in x]
    assert listing, shown
    return listing[-1]


def test_duties_attend_leave_with_reason_and_refusals(factory: sessionmaker[Session]) -> None:
    attend = new_event(factory, "学习党章（按钮测试）", timedelta(days=2))
    leave = new_event(factory, "主题党日志愿服务（按钮测试）", timedelta(days=3))
    checkin = new_event(factory, "党课（签到测试）", timedelta(minutes=20), checkin_before=30)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            listing = await duties_text(j, MEMBER, "学习党章（按钮测试）")
            assert "主题党日志愿服务（按钮测试）" in listing and "未答复" in listing

            n = line_number(listing, "学习党章（按钮测试）")
            pressed = await j.press(MEMBER, MEMBER, f"{n}. {t('duty.button_attend')}")
            assert t("duty.bot.attend_done") in pressed, pressed

            # A member of another branch pressing this branch's button: refused, with the reason.
            n = line_number(listing, "主题党日志愿服务（按钮测试）")
            refused = await j.press(OUTSIDER, MEMBER, f"{n}. {t('duty.button_leave')}")
            assert t("duty.deny.not_invited") in refused, refused
            assert not j_waiting(j, OUTSIDER)

            # 请假: the reason is asked in private, then recorded.
            asked = await j.press(MEMBER, MEMBER, f"{n}. {t('duty.button_leave')}")
            assert any("请假原因" in x for x in asked), asked
            done = await j.say(MEMBER, "要去医院陪老人看病")
            assert any("已请假" in x for x in done), done

            # 签到: the button was shown inside the window; the secretary then moves the window,
            # so the press is re-checked on the server and refused with the window shown.
            n = line_number(listing, "党课（签到测试）")
            j.find_button(MEMBER, f"{n}. {t('duty.button_checkin')}")
            with session_scope(factory) as s:
                occ = s.get(EventOccurrence, checkin)
                assert occ is not None
                events.update_event(s, occ.event_id, person(s, SECRETARY), checkin_before=5, notify=False)
            refused = await j.press(MEMBER, MEMBER, f"{n}. {t('duty.button_checkin')}")
            assert any("现在不在签到时间内" in x for x in refused), refused

            # The list now shows the answers; the secretary's report has the reason.
            listing = await duties_text(j, MEMBER, "学习党章（按钮测试）")
            assert "已报参加" in listing and "已请假" in listing
            report = await j.say(SECRETARY, "/report")
            assert any("请假" in x for x in report), report
            assert any("出勤汇总" in x or "还没有举行过活动" in x for x in report), report

            # Not registered: told to /start first.
            stranger = await j.say(710009999, "/duties")
            assert stranger == [t("duty.deny.unknown_person")]

    asyncio.run(scenario())
    row = attendance(factory, attend, MEMBER)
    assert row is not None and row.status is AttendanceStatus.attending
    row = attendance(factory, leave, MEMBER)
    assert row is not None and row.status is AttendanceStatus.leave and row.reason == "要去医院陪老人看病"
    assert attendance(factory, leave, OUTSIDER) is None
    assert attendance(factory, checkin, MEMBER) is None


def j_waiting(j: Journey, user: int) -> bool:
    asked = j.prompt(user)
    return asked is not None and asked.kind == prompts.LEAVE


def test_leave_reason_can_be_cancelled(factory: sessionmaker[Session]) -> None:
    occ = new_event(factory, "支部学习（取消请假测试）", timedelta(days=4))

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            listing = await duties_text(j, MEMBER_2, "支部学习（取消请假测试）")
            n = line_number(listing, "支部学习（取消请假测试）")
            await j.press(MEMBER_2, MEMBER_2, f"{n}. {t('duty.button_leave')}")
            assert await j.say(MEMBER_2, "取消") == [t("duty.bot.reason_cancelled")]

    asyncio.run(scenario())
    assert attendance(factory, occ, MEMBER_2) is None


def test_shift_sign_up_until_full(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        start = utcnow() + timedelta(days=5)
        shift_id = shifts.publish_shift(s, person(s, SECRETARY), title="垃圾分类桶前值守（报名测试）",
                                        place="和平里小区东门", starts_at=start, ends_at=start + timedelta(hours=2),
                                        capacity=2, branch_id=branch.id, tz=TZ).id

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()  # the invitations with 报名
            button = t("duty.button_signup")
            assert t("duty.bot.signup_done") in await j.press(MEMBER_2, MEMBER_2, button)
            again = await j.press(MEMBER_2, MEMBER_2, button)
            assert t("duty.deny.already_signed_up") in again, again
            assert t("duty.bot.signup_done") in await j.press(MEMBER_3, MEMBER_3, button)
            full = await j.press(MEMBER_4, MEMBER_4, button)
            assert t("duty.deny.full") in full, full
            listing = await duties_text(j, MEMBER_3, "垃圾分类桶前值守（报名测试）")
            assert "已报名" in listing

    asyncio.run(scenario())
    with factory() as s:
        on = s.scalars(select(ShiftSignup).where(ShiftSignup.shift_id == shift_id,
                                                 ShiftSignup.status == SignupStatus.active)).all()
        people = s.scalars(select(Person.telegram_id).where(Person.id.in_([r.person_id for r in on]))).all()
        assert sorted(p or 0 for p in people) == [MEMBER_2, MEMBER_3]


def test_my_duties_through_rasa(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    """"我这周有什么安排" → action_my_duties: the member's events, with buttons the bot handles."""
    title = "学习二十大报告（对话测试）"
    occ = new_event(factory, title, timedelta(days=1, hours=3))

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            replies = await j.say(MEMBER_4, "我这周有什么安排")
            listing = [x for x in replies if title in x]
            assert listing, replies
            n = line_number(listing[-1], title)
            pressed = await j.press(MEMBER_4, MEMBER_4, f"{n}. {t('duty.button_attend')}")
            assert t("duty.bot.attend_done") in pressed, pressed

    asyncio.run(scenario())
    row = attendance(factory, occ, MEMBER_4)
    assert row is not None and row.status is AttendanceStatus.attending
    with factory() as s:
        assert s.scalars(select(Event).join(EventOccurrence).where(EventOccurrence.id == occ)).one().title == title


def _next_invitation(factory: sessionmaker[Session], telegram_id: int) -> overview.Duty:
    with factory() as s:
        duty = overview.next_invitation(s, person(s, telegram_id), tz=TZ)
    assert duty is not None
    return duty


def test_rsvp_in_words_through_rasa(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    """"这次我参加" / "我请假" / "我去不了，要去医院复查" answer the member's next session."""
    new_event(factory, "学习党章（文字回复测试）", timedelta(minutes=50))
    # Other tests share the database: the answer goes to whatever is soonest for this member.
    duty = _next_invitation(factory, MEMBER_3)

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            replies = await j.say(MEMBER_3, "这次我参加")  # names no session: the next one
            assert any(duty.title in x and "已登记参加" in x for x in replies), replies
            row = attendance(factory, duty.ref_id, MEMBER_3)
            assert row is not None and row.status is AttendanceStatus.attending

            # No reason in the words: the session with its 请假 button; the press asks the reason.
            replies = await j.say(MEMBER_3, "我请假")
            assert any(duty.title in x and "请假" in x for x in replies), replies
            asked = await j.press(MEMBER_3, MEMBER_3, t("duty.button_leave"))
            assert any("请假原因" in x for x in asked), asked
            done = await j.say(MEMBER_3, "社区值班")
            assert any(duty.title in x for x in done), done
            row = attendance(factory, duty.ref_id, MEMBER_3)
            assert row is not None and row.status is AttendanceStatus.leave and row.reason == "社区值班"

            # A reason in the words: recorded as written.
            replies = await j.say(MEMBER_3, "我去不了，要去医院复查")
            assert any(duty.title in x and "已请假" in x for x in replies), replies
            row = attendance(factory, duty.ref_id, MEMBER_3)
            assert row is not None and row.status is AttendanceStatus.leave
            assert row.reason == "我去不了，要去医院复查"

            # Someone with no branch has nothing to answer.
            replies = await j.say(OUTSIDER + 100, "我参加")
            assert any("没有需要回复的活动" in x or "/start" in x for x in replies), replies

    asyncio.run(scenario())


def test_the_community_admin_gets_report_figures_and_a_member_does_not(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    admin = 700000069  # P-0069, community admin of 和平里社区 (holds event.report there)
    with session_scope(sqlite_demo_factory) as s:
        demo_schedule.schedule(s, tz=get_settings().tz)  # sessions with attendance, as `gridbot demo`

    async def scenario() -> None:
        async with journey(sqlite_demo_factory, NO_RASA) as j:
            report = await j.say(admin, "/report")
            assert t("duty.bot.report_not_secretary") not in report, report
            assert any("和平里第一网格党支部" in x and "未答复" in x for x in report), report  # every branch of theirs
            assert await j.say(MEMBER, "/report") == [t("duty.bot.report_not_secretary")]

    asyncio.run(scenario())
