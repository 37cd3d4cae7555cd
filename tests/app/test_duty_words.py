"""Words name the right session or shift, through the real Rasa server and action server.

Seen: "我周三那个值班去不了了，帮我取消报名" recorded leave from a 党小组会 on that day. Now the
words' day and kind pick the shift and give its place back; words naming two (or none) are
answered with a question and a button per duty.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import make_engine, session_scope
from core.duties import events, shifts
from core.messages import t
from core.models import (
    Attendance,
    Branch,
    EventKind,
    EventOccurrence,
    Person,
    ShiftSignup,
    SignupStatus,
    utcnow,
)
from tests.app.journey import journey
from tests.app.stack import Stack

SECRETARY = 700000001
MEMBER = 700000007  # P-0007, member of BR-HPL-01; no other stack test answers as them
WEEKDAY = "一二三四五六日"
TRANSCRIPT: list[str] = []


@pytest.fixture
def factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def person(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def _day_after_tomorrow(hour: int) -> datetime:
    tz = get_settings().tz
    local = (utcnow().astimezone(tz) + timedelta(days=2)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return local


def _plan(factory: sessionmaker[Session], group_title: str, shift_title: str) -> tuple[int, int, str]:
    """A 党小组会 and a shift (MEMBER signed up) on the same day; their ids and that day's 周X."""
    meeting_at, shift_at = _day_after_tomorrow(19), _day_after_tomorrow(9)
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        sec = person(s, SECRETARY)
        event = events.create_event(s, sec, branch_id=branch.id, kind=EventKind.group_meeting, title=group_title,
                                    place="党群服务中心", starts_at=meeting_at, notify=False,
                                    tz=get_settings().timezone)
        occ = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()
        shift = shifts.publish_shift(s, sec, title=shift_title, place="东门", starts_at=shift_at,
                                     ends_at=shift_at + timedelta(hours=2), capacity=3, branch_id=branch.id,
                                     cancel_cutoff_minutes=60, notify=False, tz=get_settings().tz)
        shifts.sign_up(s, shift.id, person(s, MEMBER))
        return occ, shift.id, f"周{WEEKDAY[meeting_at.weekday()]}"


def _signup(factory: sessionmaker[Session], shift_id: int) -> SignupStatus:
    with factory() as s:
        return s.scalars(select(ShiftSignup.status).where(ShiftSignup.shift_id == shift_id,
                                                          ShiftSignup.person_id == person(s, MEMBER).id)).one()


def _leave(factory: sessionmaker[Session], occurrence_id: int) -> Attendance | None:
    with factory() as s:
        return s.scalars(select(Attendance).where(Attendance.occurrence_id == occurrence_id,
                                                  Attendance.person_id == person(s, MEMBER).id)).first()


def test_cancelling_a_shift_in_words_cancels_the_shift_not_the_meeting(
        factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    occ, shift_id, day = _plan(factory, "党小组会（值班测试）", "卡口执勤（值班测试）")

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            words = f"我{day}那个值班去不了了，帮我取消报名"
            replies = await j.say(MEMBER, words)
            TRANSCRIPT.extend([f"> {words}", *replies])
            assert any(x.startswith("已取消报名：卡口执勤（值班测试）") for x in replies), replies
            listing = await j.say(MEMBER, "/duties")
            TRANSCRIPT.extend(["> /duties", *listing])
            assert "卡口执勤（值班测试）" in listing[-1] and "还有空位的执勤" in listing[-1]

    asyncio.run(scenario())
    assert _signup(factory, shift_id) is SignupStatus.cancelled
    assert _leave(factory, occ) is None  # the 党小组会 keeps no leave (and /report no shift message)
    print("\n".join(TRANSCRIPT))  # the README's transcript (pytest -s)


def test_words_naming_two_duties_ask_which_with_buttons(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    occ, shift_id, day = _plan(factory, "党小组会（二选一）", "文明劝导（二选一）")

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            replies = await j.say(MEMBER, f"{day}我去不了了")
            assert t("duty.words.which_leave") in replies, replies
            meeting = next(b["text"] for b in j.fake.last_keyboard(MEMBER) if "党小组会（二选一）" in b["text"])
            assert any("文明劝导（二选一）" in b["text"] for b in j.fake.last_keyboard(MEMBER))
            asked = await j.press(MEMBER, MEMBER, meeting)
            assert any("请假原因" in x for x in asked), asked
            await j.say(MEMBER, "要陪老伴去医院")

    asyncio.run(scenario())
    row = _leave(factory, occ)
    assert row is not None and row.reason == "要陪老伴去医院"
    assert _signup(factory, shift_id) is SignupStatus.active
