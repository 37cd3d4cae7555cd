"""Branch duties: recurrence, RSVP / leave / check-in, permissions, reminders, shifts, reports."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.db import session_scope
from core.duties import attendance, common, events, overview, recurrence, reminders, reports, shifts
from core.duties.recurrence import rule_times
from core.messaging import buttons
from core.models import (
    AttendanceStatus,
    Audience,
    Branch,
    Community,
    Event,
    EventKind,
    EventOccurrence,
    OutboxMessage,
    PartyGroup,
    Person,
    Shift,
    ShiftSignup,
    SignupStatus,
)
from core.presentation.callbacks import DutyPress as Callback
from core.presentation.callbacks import parse_duty as parse_callback

TZ = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
HOUR, DAY, MINUTE = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
SECRETARY, OTHER_SECRETARY = "P-0001", "P-0008"  # of BR-HPL-01 and BR-HPL-02
ADMIN_HPL, ADMIN_QNH = "P-0069", "P-0070"
MEMBERS = [f"P-000{i}" for i in range(1, 8)]  # BR-HPL-01
VOLUNTEER_G1, VOLUNTEER_G3, RESIDENT = "P-0073", "P-0076", "P-0072"


def local(y: int, mo: int, d: int, h: int = 9, mi: int = 0, tz: ZoneInfo = TZ) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def branch(s: Session, code: str = "BR-HPL-01") -> Branch:
    return s.scalars(select(Branch).where(Branch.code == code)).one()


def outbox(s: Session, prefix: str) -> list[OutboxMessage]:
    return list(s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.startswith(prefix))
                          .order_by(OutboxMessage.id)))


def chats(s: Session, prefix: str) -> list[int]:
    return sorted(m.chat_id for m in outbox(s, prefix))


def tg(s: Session, *codes: str) -> list[int]:
    return sorted(who(s, c).telegram_id or 0 for c in codes)


def meeting(s: Session, starts_at: datetime | None = None, **kw: object) -> Event:
    """A one-off study session of BR-HPL-01 tomorrow 19:00, whole branch."""
    args: dict = dict(branch_id=branch(s).id, kind=EventKind.study, title="学习二十大精神",
                      place="社区党群服务中心201", agenda="集中学习；交流发言",
                      starts_at=starts_at or local(2026, 11, 21, 19), now=T0, tz=TZ.key)
    args.update(kw)
    return events.create_event(s, who(s, SECRETARY), **args)


def only_occurrence(s: Session, event: Event) -> EventOccurrence:
    return s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).one()


# -- recurrence (pure) ---------------------------------------------------------------

def test_bymonthday_31_skips_short_months_and_minus_one_means_the_last_day() -> None:
    year = (local(2026, 1, 1, 0), local(2027, 1, 1, 0))
    on_31st = rule_times("FREQ=MONTHLY;BYMONTHDAY=31", local(2026, 1, 31), TZ, *year)
    assert [(d.astimezone(TZ).month, d.astimezone(TZ).day) for d in on_31st] == \
        [(1, 31), (3, 31), (5, 31), (7, 31), (8, 31), (10, 31), (12, 31)]
    last = rule_times("FREQ=MONTHLY;BYMONTHDAY=-1", local(2026, 1, 31), TZ, *year)
    assert [d.astimezone(TZ).day for d in last] == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    leap = rule_times("FREQ=MONTHLY;BYMONTHDAY=-1", local(2028, 1, 31), TZ, local(2028, 2, 1, 0), local(2028, 3, 1, 0))
    assert leap == [local(2028, 2, 29)]
    assert all(d.astimezone(TZ).hour == 9 and d.tzinfo is UTC for d in on_31st + last)
    assert on_31st[0] == datetime(2026, 1, 31, 1, 0, tzinfo=UTC)  # stored in UTC


def test_quarterly_and_monthly_rules() -> None:
    year = (local(2026, 1, 1, 0), local(2027, 1, 1, 0))
    every_third = rule_times("FREQ=MONTHLY;INTERVAL=3", local(2026, 1, 15, 14, 30), TZ, *year)
    assert every_third == [local(2026, m, 15, 14, 30) for m in (1, 4, 7, 10)]
    quarter_ends = rule_times("RRULE:FREQ=YEARLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1", local(2026, 1, 1), TZ, *year)
    assert quarter_ends == [local(2026, 3, 31), local(2026, 6, 30), local(2026, 9, 30), local(2026, 12, 31)]
    # "every month on the 15th at 09:00", the first one in November
    monthly = rule_times("FREQ=MONTHLY;BYMONTHDAY=15", local(2026, 11, 15), TZ, local(2026, 11, 20, 0), local(2027, 2, 1, 0))
    assert monthly == [local(2026, 12, 15), local(2027, 1, 15)]
    # wall-clock time survives a DST change in zones that have one
    berlin = ZoneInfo("Europe/Berlin")
    spring = rule_times("FREQ=WEEKLY", local(2026, 3, 22, 9, tz=berlin), berlin, local(2026, 3, 20, 0), local(2026, 4, 1, 0))
    assert [d.astimezone(berlin).hour for d in spring] == [9, 9] and spring[1] - spring[0] == timedelta(days=7, hours=-1)
    # the window is half-open: [start, end)
    assert rule_times("FREQ=DAILY", local(2026, 1, 1), TZ, local(2026, 1, 2), local(2026, 1, 3)) == [local(2026, 1, 2)]
    assert rule_times(None, local(2026, 1, 2), TZ, local(2026, 1, 1), local(2026, 1, 3)) == [local(2026, 1, 2)]


@pytest.mark.parametrize("rule", [
    "FREQ=SECONDLY", "FREQ=HOURLY", "DTSTART:20260101T000000\nFREQ=DAILY", "BYMONTHDAY=15", "每月15日",
    # accepted by dateutil, but never matching: it would search up to the year 9999
    "FREQ=MONTHLY;BYMONTHDAY=40", "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=MONTHLY;BYMONTHDAY=0",
    "FREQ=YEARLY;BYYEARDAY=1", "FREQ=MONTHLY;INTERVAL=0", "FREQ=MONTHLY;BYHOUR=24"])
def test_bad_rules_are_refused_in_chinese(rule: str) -> None:
    with pytest.raises(NotAllowed, match="重复规则无法识别"):
        rule_times(rule, local(2026, 1, 1), TZ, local(2026, 1, 1), local(2026, 2, 1))


def test_rare_but_possible_rules_are_accepted() -> None:
    leap_days = rule_times("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", local(2026, 1, 1), TZ, local(2026, 1, 1), local(2033, 1, 1))
    assert leap_days == [local(2028, 2, 29), local(2032, 2, 29)]
    last_friday = rule_times("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;BYHOUR=0;BYMINUTE=30", local(2026, 1, 1), TZ,
                             local(2026, 1, 1), local(2026, 3, 1))
    assert last_friday == [local(2026, 1, 30, 0, 30), local(2026, 2, 27, 0, 30)]


def test_callback_data() -> None:
    assert parse_callback("ev:y:12") == Callback("ev", "y", 12)
    assert parse_callback("sh:t:7") == Callback("sh", "t", 7)
    assert parse_callback("t:claim:3") is None and parse_callback("ev:x:1") is None and parse_callback("") is None


# -- events: creating, permissions ---------------------------------------------------

def test_secretary_schedules_monthly_meeting_and_members_are_told(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        event = events.create_event(
            s, who(s, SECRETARY), branch_id=branch(s).id, kind=EventKind.committee, title="支委会",
            place="党群服务中心", starts_at=local(2026, 11, 15), rrule="FREQ=MONTHLY;BYMONTHDAY=15", now=T0, tz=TZ.key)
        assert event.mandatory and event.reminder_offsets_minutes == [1440, 60] and event.tz == "Asia/Shanghai"
        occs = recurrence.occurrences(s, event, T0, T0 + 10 * 7 * DAY, now=T0)
        assert [o.starts_at for o in occs] == [local(2026, 12, 15), local(2027, 1, 15)]
        assert all(o.reminders_dirty for o in occs)
        notices = outbox(s, f"event-new:{event.id}:")
        assert sorted(m.chat_id for m in notices) == tg(s, *MEMBERS)
        assert "支委会" in notices[0].payload["text"] and "12月15日（周二）09:00" in notices[0].payload["text"]
        assert buttons.plain(s, notices[0].payload)["buttons"] == [[{"text": "参加", "callback_data": f"ev:y:{occs[0].id}"},
                                                  {"text": "请假", "callback_data": f"ev:n:{occs[0].id}"}]]
        # materialising again adds nothing
        recurrence.materialise_all(s, T0)
        assert len(recurrence.occurrences(s, event, T0, T0 + 10 * 7 * DAY, now=T0)) == 2

        group = s.scalars(select(PartyGroup).where(PartyGroup.code == "PG-HPL-01-2")).one()
        gm = meeting(s, kind=EventKind.group_meeting, audience=Audience.party_group, party_group_id=group.id)
        assert chats(s, f"event-new:{gm.id}:") == tg(s, "P-0002", "P-0004", "P-0006")
        named = meeting(s, audience=Audience.people, person_ids=[who(s, "P-0003").id, who(s, VOLUNTEER_G1).id])
        assert chats(s, f"event-new:{named.id}:") == tg(s, "P-0003", VOLUNTEER_G1)
        assert not named.mandatory  # study sessions are optional unless said otherwise
        other_group = s.scalars(select(PartyGroup).where(PartyGroup.code == "PG-HPL-02-1")).one()
        with pytest.raises(NotAllowed, match="党小组"):
            meeting(s, audience=Audience.party_group, party_group_id=other_group.id)
        with pytest.raises(NotAllowed, match="过去"):
            meeting(s, starts_at=T0 - HOUR)


def test_secretary_of_another_branch_cannot_touch_this_branchs_events(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        event = meeting(s)
        occ = only_occurrence(s, event)
        for code in (OTHER_SECRETARY, "P-0002", ADMIN_QNH, RESIDENT):  # other secretary, member, other admin
            outsider = who(s, code)
            with pytest.raises(NotAllowed, match="只有本支部的书记或本社区的管理员") as refused:
                events.create_event(s, outsider, branch_id=branch(s).id, kind=EventKind.study, title="x",
                                    place="y", starts_at=T0 + DAY, now=T0, tz=TZ.key)
            assert str(refused.value).startswith("只有本支部")
            for attempt in (lambda p=outsider: events.update_event(s, event.id, p, now=T0, title="改"),
                            lambda p=outsider: events.cancel_event(s, event.id, p, now=T0),
                            lambda p=outsider: events.cancel_occurrence(s, occ.id, p, now=T0),
                            lambda p=outsider: reports.event_report(s, occ.id, p),
                            lambda p=outsider: reports.monthly_summary(s, branch(s).id, 2026, 11, p, now=T0, tz=TZ)):
                with pytest.raises(NotAllowed, match="只有本支部"):
                    attempt()
        with pytest.raises(NotAllowed, match="/start"):
            events.update_event(s, event.id, None, now=T0, title="改")
        assert event.title == "学习二十大精神" and not event.cancelled
        # the community's own admin may
        events.update_event(s, event.id, who(s, ADMIN_HPL), now=T0, place="会议室")
        assert event.place == "会议室"


# -- RSVP, leave, check-in -------------------------------------------------------------

def test_rsvp_leave_and_check_in_rules(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        event = meeting(s)  # starts 2026-11-21 11:00 UTC; check-in from 30 min before to 60 min after
        occ = only_occurrence(s, event)
        start = occ.starts_at
        a, b = who(s, "P-0002"), who(s, "P-0003")
        with pytest.raises(NotAllowed, match="不在这次活动"):
            attendance.rsvp(s, occ.id, who(s, OTHER_SECRETARY), True, now=T0)
        with pytest.raises(NotAllowed, match="请假请说明原因"):
            attendance.rsvp(s, occ.id, a, False, "  ", now=T0)
        row = attendance.rsvp(s, occ.id, a, False, "出差", now=T0)
        assert (row.status, row.reason) == (AttendanceStatus.leave, "出差")
        row = attendance.rsvp(s, occ.id, a, True, now=T0 + HOUR)  # changed their mind
        assert (row.status, row.reason, row.at) == (AttendanceStatus.attending, None, T0 + HOUR)
        with pytest.raises(NotAllowed, match="已经开始"):
            attendance.rsvp(s, occ.id, b, True, now=start)

        with pytest.raises(NotAllowed, match="不在签到时间内") as early:
            attendance.check_in(s, occ.id, a, now=start - 31 * MINUTE)
        assert "11月21日（周六）18:30 至 20:00" in str(early.value)
        with pytest.raises(NotAllowed, match="不在签到时间内"):
            attendance.check_in(s, occ.id, b, now=start + 61 * MINUTE)
        row = attendance.check_in(s, occ.id, a, now=start - 30 * MINUTE)
        assert (row.status, row.checked_in_at) == (AttendanceStatus.checked_in, start - 30 * MINUTE)
        assert attendance.check_in(s, occ.id, a, now=start).checked_in_at == start - 30 * MINUTE  # idempotent
        with pytest.raises(NotAllowed, match="已经签到"):
            attendance.rsvp(s, occ.id, a, False, "临时有事", now=start - 10 * MINUTE)
        attendance.rsvp(s, occ.id, b, False, "生病", now=T0)
        assert attendance.check_in(s, occ.id, b, now=start + 60 * MINUTE).status is AttendanceStatus.checked_in

        later = meeting(s, starts_at=local(2026, 11, 28, 19))
        later_occ = only_occurrence(s, later)
        events.cancel_occurrence(s, later_occ.id, who(s, SECRETARY), now=T0)
        with pytest.raises(NotAllowed, match="已取消"):
            attendance.rsvp(s, later_occ.id, a, True, now=T0)
        assert chats(s, f"occurrence-cancelled:{later_occ.id}:") == tg(s, *MEMBERS)


def test_event_report_and_monthly_summary(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        sec = who(s, SECRETARY)
        first, second = meeting(s), meeting(s, starts_at=local(2026, 11, 25, 19), title="党课：党章")
        o1, o2 = only_occurrence(s, first), only_occurrence(s, second)
        p = {c: who(s, c) for c in MEMBERS}
        attendance.rsvp(s, o1.id, p["P-0002"], True, now=T0)
        attendance.rsvp(s, o1.id, p["P-0003"], False, "出差", now=T0)
        attendance.rsvp(s, o1.id, p["P-0004"], True, now=T0)
        attendance.check_in(s, o1.id, p["P-0002"], now=o1.starts_at)
        attendance.check_in(s, o1.id, p["P-0005"], now=o1.starts_at)  # came without answering

        report = reports.event_report(s, o1.id, sec)
        names = lambda people: [x.code for x in people]  # noqa: E731
        assert names(report.coming) == ["P-0002", "P-0004", "P-0005"]
        assert names(report.checked_in) == ["P-0002", "P-0005"]
        assert [(x.code, r) for x, r in report.leave] == [("P-0003", "出差")]
        assert names(report.no_answer) == ["P-0001", "P-0006", "P-0007"]
        assert report.expected == 7
        text = reports.event_report_text(report)
        assert "应到7人：参加3人（已签到2人），请假1人，未答复3人" in text and "文爱华（出差）" in text

        attendance.check_in(s, o2.id, p["P-0002"], now=o2.starts_at)
        summary = reports.monthly_summary(s, branch(s).id, 2026, 11, sec, now=local(2026, 11, 30, 12), tz=TZ)
        assert [(o.id, tl.expected, tl.attended, tl.leave, tl.absent) for o, tl in summary.occurrences] == \
            [(o1.id, 7, 2, 1, 4), (o2.id, 7, 1, 0, 6)]
        assert (summary.total.expected, summary.total.attended, summary.total.leave, summary.total.absent) == (14, 3, 1, 10)
        mine = {x.code: (tl.expected, tl.attended, tl.leave) for x, tl in summary.people}
        assert mine["P-0002"] == (2, 2, 0) and mine["P-0003"] == (2, 0, 1) and mine["P-0001"] == (2, 0, 0)
        text = reports.monthly_summary_text(summary, TZ)
        assert "2026年11月出勤汇总：活动2次，应到14人次，实到3人次" in text and "出勤率21%" in text
        # occurrences that have not started yet are not counted
        assert len(reports.monthly_summary(s, branch(s).id, 2026, 11, sec, now=T0 + 2 * DAY, tz=TZ).occurrences) == 1
        assert "还没有举行过活动" in reports.monthly_summary_text(
            reports.monthly_summary(s, branch(s).id, 2026, 10, sec, now=T0, tz=TZ), TZ)


# -- changing and cancelling ------------------------------------------------------------

def test_moving_a_one_off_event_keeps_answers_and_tells_attendees(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        sec, a = who(s, SECRETARY), who(s, "P-0002")
        event = meeting(s)
        occ = only_occurrence(s, event)
        attendance.rsvp(s, occ.id, a, True, now=T0)
        occ.reminders_dirty = False
        events.update_event(s, event.id, sec, now=T0, starts_at=local(2026, 11, 22, 15), place="会议室")
        assert only_occurrence(s, event).id == occ.id and occ.starts_at == local(2026, 11, 22, 15)
        assert occ.reminders_dirty and reports.event_report(s, occ.id, sec).coming == [a]
        changed = outbox(s, f"event-changed:{event.id}:1:")
        assert sorted(m.chat_id for m in changed) == tg(s, *MEMBERS)
        assert "11月22日（周日）15:00" in changed[0].payload["text"] and "会议室" in changed[0].payload["text"]
        events.update_event(s, event.id, sec, now=T0, agenda="新议程")
        assert len(outbox(s, f"event-changed:{event.id}:2:")) == 7  # each change its own notice
        # narrowing the audience tells those who no longer need to come
        events.update_event(s, event.id, sec, now=T0, audience=Audience.people, person_ids=[a.id])
        assert chats(s, f"event-changed:{event.id}:3:") == tg(s, "P-0002")
        assert chats(s, f"event-uninvited:{event.id}:3:") == tg(s, *[c for c in MEMBERS if c != "P-0002"])
        with pytest.raises(ValueError, match="unknown event field"):
            events.update_event(s, event.id, sec, now=T0, colour="red")


def test_changing_a_series_and_cancelling_it(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        sec = who(s, SECRETARY)
        event = events.create_event(s, sec, branch_id=branch(s).id, kind=EventKind.theme_day, title="主题党日",
                                    place="社区广场", starts_at=local(2026, 11, 5), rrule="FREQ=MONTHLY;BYMONTHDAY=5",
                                    now=T0, tz=TZ.key)
        window = (T0, T0 + common.HORIZON)
        assert [o.starts_at for o in recurrence.occurrences(s, event, *window, now=T0)] == [local(2026, 12, 5), local(2027, 1, 5)]
        events.update_event(s, event.id, sec, now=T0, rrule="FREQ=MONTHLY;BYMONTHDAY=-1")
        assert [o.starts_at for o in recurrence.occurrences(s, event, *window, now=T0)] == \
            [local(2026, 11, 30), local(2026, 12, 31)]
        cancelled = recurrence.occurrences(s, event, *window, now=T0, include_cancelled=True)
        assert sum(o.cancelled for o in cancelled) == 2
        events.cancel_event(s, event.id, sec, now=T0)
        assert event.cancelled and recurrence.occurrences(s, event, *window, now=T0) == []
        notices = outbox(s, f"event-cancelled:{event.id}:")
        assert len(notices) == 7 and "活动已取消：主题党日" in notices[0].payload["text"]
        assert "11月30日" in notices[0].payload["text"]
        events.cancel_event(s, event.id, sec, now=T0)  # again: nothing new
        assert len(outbox(s, f"event-cancelled:{event.id}:")) == 7
        with pytest.raises(NotAllowed, match="已取消"):
            events.update_event(s, event.id, sec, now=T0, title="x")


# -- reminders (the job's body) ------------------------------------------------------------

def test_reminders_skip_leave_and_muted_run_once_and_say_when_late(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        event = meeting(s, person_ids=[], audience=Audience.branch, reminder_offsets=[60, 1440, 60])
        assert event.reminder_offsets_minutes == [1440, 60] and not event.mandatory
        occ = only_occurrence(s, event)
        due = occ.starts_at - DAY
        attendance.rsvp(s, occ.id, who(s, "P-0002"), False, "出差", now=T0)
        attendance.rsvp(s, occ.id, who(s, "P-0003"), True, now=T0)
        attendance.mute_reminders(s, event.id, who(s, "P-0004"))
        assert reminders.send_reminders(s, occ.id, 1440, now=due - 2 * MINUTE) == 0  # stale (moved) job: too early
        assert reminders.send_reminders(s, occ.id, 1440, now=due) == 5
        assert reminders.send_reminders(s, occ.id, 1440, now=due + MINUTE) == 0  # a job run twice queues once
        sent = outbox(s, f"remind:{occ.id}:")
        assert sorted(m.chat_id for m in sent) == tg(s, "P-0001", "P-0003", "P-0005", "P-0006", "P-0007")
        text = sent[0].payload["text"]
        assert "提醒：学习二十大精神将在24小时后开始" in text and "迟到" not in text and "议程：集中学习" in text
        by_chat = {m.chat_id: buttons.plain(s, m.payload)["buttons"] for m in sent}
        assert by_chat[tg(s, "P-0003")[0]] == [[{"text": "不再提醒", "callback_data": f"ev:m:{event.id}"}]]
        assert by_chat[tg(s, "P-0001")[0]][0][0]["callback_data"] == f"ev:y:{occ.id}"

        late = occ.starts_at - 45 * MINUTE  # the 1 h reminder, 15 minutes late
        assert reminders.send_reminders(s, occ.id, 60, now=late) == 5
        late_text = outbox(s, f"remind:{occ.id}:")[-1].payload["text"]
        assert "45分钟后开始" in late_text and late_text.endswith("（迟到的提醒）")
        assert reminders.send_reminders(s, occ.id, 30, now=occ.starts_at - 30 * MINUTE) == 0  # not configured
        attendance.mute_reminders(s, event.id, who(s, "P-0004"), muted=False)
        assert reminders.send_reminders(s, occ.id, 60, now=occ.starts_at - 40 * MINUTE) == 1  # only P-0004 is new

        mandatory = meeting(s, kind=EventKind.general_meeting, title="支部党员大会")
        with pytest.raises(NotAllowed, match="必须参加"):
            attendance.mute_reminders(s, mandatory.id, who(s, "P-0004"))
        started = only_occurrence(s, mandatory)
        assert reminders.send_reminders(s, started.id, 60, now=started.starts_at) == 0  # the event has begun
        events.cancel_event(s, mandatory.id, who(s, SECRETARY), now=T0)
        assert reminders.send_reminders(s, started.id, 60, now=started.starts_at - HOUR) == 0


# -- my duties --------------------------------------------------------------------------

def test_my_duties_lists_sessions_and_shifts_with_what_can_be_done(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        me = who(s, "P-0002")
        event = meeting(s)
        occ = only_occurrence(s, event)
        far = meeting(s, starts_at=T0 + 20 * DAY, title="很久以后")
        shift = shifts.publish_shift(s, who(s, SECRETARY), branch_id=branch(s).id, title="卡口执勤", place="东门",
                                     starts_at=local(2026, 11, 22, 8), ends_at=local(2026, 11, 22, 12),
                                     capacity=4, now=T0, tz=TZ)
        shifts.sign_up(s, shift.id, me, now=T0)
        mine = overview.my_duties(s, me, now=T0, tz=TZ)
        assert [(d.kind, d.ref_id, d.status) for d in mine] == [("event", occ.id, "none"), ("shift", shift.id, "signed_up")]
        assert far.id not in {d.ref_id for d in mine}
        payload = overview.duties_payload(s, me, now=T0, tz=TZ)
        assert payload["text"].splitlines() == [
            "📋 您近14天的安排：",
            "1. 11月21日（周六）19:00 学习二十大精神 @ 社区党群服务中心201（未答复）",
            "2. 11月22日（周日）08:00–12:00 执勤：卡口执勤 @ 东门（已报名）"]
        assert payload["buttons"] == [
            [{"text": "1. 参加", "callback_data": f"ev:y:{occ.id}"}, {"text": "1. 请假", "callback_data": f"ev:n:{occ.id}"}],
            [{"text": "2. 找人替班", "callback_data": f"sh:w:{shift.id}"}]]
        during = occ.starts_at + 10 * MINUTE  # running now: check-in offered
        now_duty = overview.my_duties(s, me, now=during, tz=TZ)[0]
        assert now_duty.can_check_in and overview.duties_payload(s, me, now=during, tz=TZ)["buttons"][0] == \
            [{"text": "1. 签到", "callback_data": f"ev:c:{occ.id}"}]
        assert overview.duties_payload(s, who(s, RESIDENT), now=T0, tz=TZ) == {"text": "您近14天没有学习活动或执勤安排。"}


# -- volunteer shifts ---------------------------------------------------------------------

def shift_of(s: Session, capacity: int = 2, **kw: object) -> Shift:
    args: dict = dict(branch_id=branch(s).id, title="卡口执勤", place="东门", starts_at=local(2026, 11, 23, 8),
                      ends_at=local(2026, 11, 23, 12), capacity=capacity, now=T0, tz=TZ)
    args.update(kw)
    return shifts.publish_shift(s, who(s, SECRETARY), **args)


def test_publishing_shifts_invites_members_and_volunteers(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        shift = shift_of(s, capacity=4, note="请穿红马甲")
        assert shift.community_id == s.scalars(select(Community).where(Community.code == "C-HPL")).one().id
        assert chats(s, f"shift-published:{shift.id}:") == tg(s, *MEMBERS, VOLUNTEER_G1)
        notice = buttons.plain(s, outbox(s, f"shift-published:{shift.id}:")[0].payload)
        assert "需要4人\n备注：请穿红马甲" in notice["text"] and "11月23日（周一）08:00–12:00" in notice["text"]
        assert notice["buttons"] == [[{"text": "报名", "callback_data": f"sh:s:{shift.id}"}]]
        with pytest.raises(NotAllowed, match="只有本支部的书记或本社区的管理员"):
            shifts.publish_shift(s, who(s, OTHER_SECRETARY), branch_id=branch(s).id, title="x", place="y",
                                 starts_at=T0 + DAY, ends_at=T0 + DAY + HOUR, capacity=1, now=T0, tz=TZ)
        hpl = s.scalars(select(Community).where(Community.code == "C-HPL")).one()
        with pytest.raises(NotAllowed, match="只有本支部的书记或本社区的管理员"):
            shifts.publish_shift(s, who(s, ADMIN_QNH), community_id=hpl.id, title="x", place="y",
                                 starts_at=T0 + DAY, ends_at=T0 + DAY + HOUR, capacity=1, now=T0, tz=TZ)
        community = shifts.publish_shift(s, who(s, ADMIN_HPL), community_id=hpl.id, title="文明劝导", place="和平里西街",
                                         starts_at=T0 + DAY, ends_at=T0 + DAY + 2 * HOUR, capacity=10, now=T0, tz=TZ)
        eligible = {p.code for p in shifts.eligible_for_shift(s, community)}
        assert {VOLUNTEER_G1, VOLUNTEER_G3, "P-0001", "P-0008"} <= eligible and RESIDENT not in eligible
        assert "P-0031" not in eligible  # a member of a branch in the other community
        for bad, reason in ((dict(capacity=0), "至少为1人"), (dict(ends_at=local(2026, 11, 23, 7)), "结束时间"),
                            (dict(starts_at=T0 - HOUR), "过去")):
            with pytest.raises(NotAllowed, match=reason):
                shift_of(s, **bad)


def test_sign_up_rules_cutoff_swap_and_roster(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        shift = shift_of(s, capacity=2)  # cancel cutoff: 24 h before 2026-11-23 08:00
        a, b, c, vol = who(s, "P-0002"), who(s, "P-0003"), who(s, "P-0004"), who(s, VOLUNTEER_G1)
        shifts.sign_up(s, shift.id, a, now=T0)
        with pytest.raises(NotAllowed, match="已经报名"):
            shifts.sign_up(s, shift.id, a, now=T0)
        with pytest.raises(NotAllowed, match="只有本支部党员和登记的志愿者"):
            shifts.sign_up(s, shift.id, who(s, RESIDENT), now=T0)
        with pytest.raises(NotAllowed, match="只有本支部党员和登记的志愿者"):
            shifts.sign_up(s, shift.id, who(s, VOLUNTEER_G3), now=T0)  # lives in another grid
        shifts.sign_up(s, shift.id, vol, now=T0)
        with pytest.raises(NotAllowed, match="报满"):
            shifts.sign_up(s, shift.id, b, now=T0)

        shifts.cancel_signup(s, shift.id, vol, now=T0, tz=TZ)  # well before the cutoff
        shifts.sign_up(s, shift.id, b, now=T0)
        with pytest.raises(NotAllowed, match="报满"):
            shifts.sign_up(s, shift.id, vol, now=T0)
        cutoff = shift.starts_at - DAY
        with pytest.raises(NotAllowed, match="已过取消截止时间（11月22日（周日）08:00）") as late:
            shifts.cancel_signup(s, shift.id, b, now=cutoff, tz=TZ)
        assert "找人替班" in str(late.value)
        with pytest.raises(NotAllowed, match="没有报名"):
            shifts.cancel_signup(s, shift.id, c, now=T0, tz=TZ)

        offered = shifts.request_swap(s, shift.id, b, now=cutoff + HOUR, tz=TZ)
        assert offered.swap_requested
        offers = outbox(s, f"swap-offer:{offered.id}:")
        assert sorted(m.chat_id for m in offers) == tg(s, *[m for m in MEMBERS if m not in ("P-0002", "P-0003")], VOLUNTEER_G1)
        assert buttons.plain(s, offers[0].payload)["buttons"] == [[{"text": "我来接班", "callback_data": f"sh:t:{offered.id}"}]]
        with pytest.raises(NotAllowed, match="不能接自己的班"):
            shifts.take_swap(s, offered.id, b, now=cutoff + HOUR, tz=TZ)
        with pytest.raises(NotAllowed, match="已经报名"):
            shifts.take_swap(s, offered.id, a, now=cutoff + HOUR, tz=TZ)
        taken = shifts.take_swap(s, offered.id, c, now=cutoff + 2 * HOUR, tz=TZ)
        assert taken.person_id == c.id and taken.status is SignupStatus.active
        assert (offered.status, offered.swapped_to_id) == (SignupStatus.swapped, c.id)
        assert chats(s, f"swap-taken:{offered.id}:") == tg(s, "P-0003")
        with pytest.raises(NotAllowed, match="已经有人接了"):
            shifts.take_swap(s, offered.id, vol, now=cutoff + 3 * HOUR, tz=TZ)
        with pytest.raises(NotAllowed, match="已经开始或结束"):
            shifts.sign_up(s, shift.id, vol, now=shift.starts_at)

        shifts.request_swap(s, shift.id, a, now=cutoff + 3 * HOUR, tz=TZ)
        entries = shifts.roster(s, start=T0, end=T0 + 7 * DAY, branch_id=branch(s).id)
        assert [(e.shift.id, [(p.code, swap) for p, swap in e.people], e.missing) for e in entries] == \
            [(shift.id, [("P-0002", True), ("P-0004", False)], 0)]
        assert shifts.roster_text(entries, TZ).splitlines()[1] == \
            "· 11月23日（周一）08:00–12:00 卡口执勤 @ 东门（2/2人）：梁海涛（找人替班中）、崔浩然"
        gave_back = s.scalars(select(ShiftSignup).where(ShiftSignup.person_id == vol.id)).one()
        assert gave_back.status is SignupStatus.cancelled


def test_short_shift_tells_the_secretary_once(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        shift = shift_of(s, capacity=3)
        full = shift_of(s, capacity=1, place="西门")
        shifts.sign_up(s, shift.id, who(s, "P-0002"), now=T0)
        shifts.sign_up(s, full.id, who(s, "P-0003"), now=T0)
        assert shifts.short_shifts(s, shift.starts_at - 25 * HOUR) == []
        at = shift.starts_at - 24 * HOUR
        assert [(x.id, n) for x, n in shifts.short_shifts(s, at)] == [(shift.id, 1)]
        assert shifts.notify_short_shifts(s, at, tz=TZ) == 1
        assert shifts.notify_short_shifts(s, at + HOUR, tz=TZ) == 0
        notice = outbox(s, f"shift-short:{shift.id}:")
        assert [m.chat_id for m in notice] == tg(s, SECRETARY)
        assert "已报名1/3人，还差2人" in notice[0].payload["text"]
        shifts.cancel_shift(s, shift.id, who(s, SECRETARY), now=at, tz=TZ)
        assert chats(s, f"shift-cancelled:{shift.id}:") == tg(s, "P-0002")
        assert shifts.short_shifts(s, at) == []


def test_two_people_racing_for_the_last_place(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        shift_id = shift_of(s, capacity=1).id
    results: list[str] = []
    barrier = threading.Barrier(2)

    def take(code: str) -> None:
        barrier.wait()
        try:
            with session_scope(demo_factory) as s:
                shifts.sign_up(s, shift_id, who(s, code), now=T0)
            results.append("ok")
        except NotAllowed as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=take, args=(c,)) for c in ("P-0002", "P-0003")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(results) == ["ok", "这个班次已经报满了，谢谢您的热心！"]
    with session_scope(demo_factory) as s:
        active = s.scalars(select(ShiftSignup).where(ShiftSignup.shift_id == shift_id,
                                                     ShiftSignup.status == SignupStatus.active)).all()
        assert len(active) == 1


@pytest.mark.parametrize(("text", "reason"), [
    ("我请假", None), ("请个假", None), ("这次党员大会我去不了", None), ("不好意思这次我去不了", None),
    ("来不了，请假", None),
    ("我去不了，要去医院复查", "我去不了，要去医院复查"),
    ("帮我请个假，身体不舒服", "帮我请个假，身体不舒服"),
])
def test_leave_reason_is_the_words_only_when_they_give_one(text: str, reason: str | None) -> None:
    assert attendance.leave_reason(text) == reason


def test_next_invitation_is_the_soonest_session_not_started(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        me = who(s, "P-0002")
        assert overview.next_invitation(s, me, now=T0, tz=TZ) is None
        later = only_occurrence(s, meeting(s, starts_at=local(2026, 11, 25, 9), title="后面的"))
        sooner = only_occurrence(s, meeting(s))  # tomorrow 19:00
        assert overview.next_invitation(s, me, now=T0, tz=TZ).ref_id == sooner.id  # type: ignore[union-attr]
        attendance.rsvp(s, sooner.id, me, True, now=T0)  # answered sessions can still be changed
        assert overview.next_invitation(s, me, now=T0, tz=TZ).ref_id == sooner.id  # type: ignore[union-attr]
        started = sooner.starts_at + MINUTE
        assert overview.next_invitation(s, me, now=started, tz=TZ).ref_id == later.id  # type: ignore[union-attr]
        assert overview.next_invitation(s, who(s, RESIDENT), now=T0, tz=TZ) is None
