"""The demo shows a calendar at once: sessions, shifts, a past session with figures."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.duties import demo as demo_schedule
from core.duties import events, overview, reports
from core.models import Attendance, AttendanceStatus, Branch, Event, EventOccurrence, Shift, utcnow

TZ = ZoneInfo("Asia/Shanghai")


def test_every_branch_gets_sessions_shifts_and_a_past_session_once(sqlite_demo_factory: sessionmaker[Session]) -> None:
    now = utcnow()
    with session_scope(sqlite_demo_factory) as s:
        made = demo_schedule.schedule(s, tz=TZ, now=now)
        branches = s.scalar(select(func.count()).select_from(Branch))
    assert 0 < made.branches <= branches
    assert made.events == 4 * made.branches and made.shifts == 2 * made.branches and made.check_ins > 0

    with session_scope(sqlite_demo_factory) as s:
        assert demo_schedule.schedule(s, tz=TZ, now=now + timedelta(days=1)) == demo_schedule.DemoSchedule()
        for branch_id in s.scalars(select(Event.branch_id).distinct()):
            kinds = {e.kind.value for e in s.scalars(select(Event).where(Event.branch_id == branch_id))}
            assert {"general_meeting", "theme_day", "group_meeting", "study"} <= kinds
            assert any(e.rrule for e in s.scalars(select(Event).where(Event.branch_id == branch_id)))
        shifts = list(s.scalars(select(Shift)))
        assert len(shifts) == made.shifts and all(x.starts_at > now and x.capacity > 0 for x in shifts)
        past = s.scalars(select(EventOccurrence).where(EventOccurrence.starts_at < now)).all()
        assert len(past) == made.branches
        statuses = {a.status for a in s.scalars(select(Attendance).where(
            Attendance.occurrence_id.in_([o.id for o in past])))}
        assert AttendanceStatus.checked_in in statuses and AttendanceStatus.leave in statuses


def test_a_member_sees_duties_and_the_secretary_sees_figures(sqlite_demo_factory: sessionmaker[Session]) -> None:
    now = utcnow()
    with session_scope(sqlite_demo_factory) as s:
        demo_schedule.schedule(s, tz=TZ, now=now)
    with session_scope(sqlite_demo_factory) as s:
        occurrence = s.scalars(select(EventOccurrence).where(EventOccurrence.starts_at < now)).first()
        assert occurrence is not None
        event = s.get(Event, occurrence.event_id)
        branch = s.get(Branch, event.branch_id)
        secretary = demo_schedule._secretary(s, branch)  # noqa: SLF001 - the one who scheduled it
        member = next(p for p in events.attendees(s, occurrence) if p.id != secretary.id)
        coming = overview.my_duties(s, member, now=now, tz=TZ)
        assert len(coming) >= 2, coming  # the meeting and the theme day, within the next fortnight
        report = reports.event_report(s, occurrence.id, secretary)
        assert report.expected > 0 and 0 < len(report.checked_in) < report.expected
