"""The demo's calendar: sessions, shifts and one past session with attendance, per branch.

The demo registry (data/reference/demo) holds people, places and roles, which do not
depend on the day; what a new user should see at once — 您的学习活动和执勤安排, a
secretary's /report, reminders — does. So `gridbot demo` schedules, relative to the day
it first runs, for each branch that has a secretary:

* a 支部党员大会 in three days and a 主题党日 in five, and a 党小组会 every second Tuesday
  of the month (recurring);
* two volunteer shifts in the coming week with free places;
* one study session a week ago, with check-ins and a leave, so /report has figures, and its
  study material (also in the branch's library under 基层治理), so the member on leave has 补学
  to do.

Everything goes through the services a secretary's own actions use (core/duties/service.py),
without notifying anyone: the demo's people are fictional. It runs once per database: a
branch that already has any event is left alone, so a second `gridbot demo` (or a
re-import of the registry) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.duties import attendance
from core.duties import events as duty_events
from core.duties import shifts as duty_shifts
from core.models import Branch, Event, EventKind, EventOccurrence, Person, Role, RoleGrant, utcnow
from core.study import materials as study_materials

EVENING, MORNING = time(19, 0), time(9, 0)


@dataclass(frozen=True)
class DemoSchedule:
    branches: int = 0
    events: int = 0
    shifts: int = 0
    check_ins: int = 0


def _at(day: datetime, days: int, clock: time, tz: ZoneInfo) -> datetime:
    local = (day.astimezone(tz) + timedelta(days=days)).date()
    return datetime.combine(local, clock, tzinfo=tz)


def _secretary(session: Session, branch: Branch) -> Person | None:
    return session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
        RoleGrant.role == Role.secretary, RoleGrant.branch_id == branch.id).order_by(Person.id)).first()


def schedule(session: Session, *, tz: ZoneInfo, now: datetime | None = None) -> DemoSchedule:
    """Schedule the demo calendar of every branch that has a secretary and no event yet."""
    now = now or utcnow()
    branches = events = shifts = check_ins = 0
    for branch in session.scalars(select(Branch).order_by(Branch.id)):
        secretary = _secretary(session, branch)
        if secretary is None or session.scalar(select(exists().where(Event.branch_id == branch.id))):
            continue
        branches += 1
        create = partial(duty_events.create_event, session, secretary, branch_id=branch.id, tz=tz.key, now=now,
                         notify=False)
        create(kind=EventKind.general_meeting, title="支部党员大会", place="社区党群服务中心二楼会议室",
               agenda="传达学习上级精神；讨论发展党员", starts_at=_at(now, 3, EVENING, tz))
        create(kind=EventKind.theme_day, title="主题党日：清理楼道杂物", place="小区东门集合",
               starts_at=_at(now, 5, MORNING, tz), duration_minutes=120)
        create(kind=EventKind.group_meeting, title="党小组会", place="社区党群服务中心一楼活动室",
               starts_at=_at(now, 1, EVENING, tz), rrule="FREQ=MONTHLY;BYDAY=+2TU")
        events += 3
        for days, title, place in ((2, "周末文明劝导", "小区南门"), (6, "独居老人入户探访", "社区党群服务中心")):
            start = _at(now, days, MORNING, tz)
            duty_shifts.publish_shift(session, secretary, branch_id=branch.id, title=title, place=place,
                                 starts_at=start, ends_at=start + timedelta(hours=2), capacity=5,
                                 now=now, notify=False, tz=tz)
            shifts += 1
        check_ins += _past_session(session, branch, secretary, now=now, tz=tz)
        events += 1
    return DemoSchedule(branches, events, shifts, check_ins)


def _past_session(session: Session, branch: Branch, secretary: Person, *, now: datetime, tz: ZoneInfo) -> int:
    """A study session a week ago: most members checked in, one asked for leave beforehand."""
    start = _at(now, -7, EVENING, tz)
    then = start - timedelta(days=3)  # scheduled three days before it took place
    event = duty_events.create_event(session, secretary, branch_id=branch.id, kind=EventKind.study, title="学习会：基层治理",
                                place="社区党群服务中心二楼会议室", starts_at=start, tz=tz.key, now=then,
                                notify=False)
    occurrence = session.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).one()
    members = duty_events.attendees(session, occurrence)
    checked = 0
    for index, person in enumerate(members):
        if index == len(members) - 1 and index > 0:
            attendance.rsvp(session, occurrence.id, person, False, "家里老人住院，需要陪护", now=then + timedelta(days=1))
            continue
        attendance.check_in(session, occurrence.id, person, now=start + timedelta(minutes=5 + index))
        checked += 1
    material = study_materials.add(
        session, secretary, branch_id=branch.id, occurrence_id=occurrence.id, topic="基层治理",
        content=study_materials.content_of("学习会：基层治理（会议材料）\n"
                                           "一、传达社区党委关于网格化治理的部署；\n"
                                           "二、各党小组汇报本月走访情况；\n"
                                           "三、讨论：楼道堆物和电动车充电怎么管。"),
        now=start + timedelta(hours=2))
    material.delivered_at = material.created_at  # the demo's people are fictional: nobody is sent it
    return checked
