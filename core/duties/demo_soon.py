"""The offline shell's session a few minutes away, so that a reminder arrives while one watches.

`make run` without a token runs the scheduler too; with REMINDER_LEAD minutes (default
DEFAULT_LEAD) the shell schedules, for the first branch that has a secretary, a 党小组会 that
starts one minute after its reminder is due (lead + 1 minutes from now), reminded `lead` minutes
before. Through the secretary's own service (core.duties.events.create_event), without announcing it.
A session from an earlier start whose reminder (with the same lead) is still to come is used
again, so restarts add nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.duties.events import create_event
from core.models import Branch, Event, EventKind, EventOccurrence, Person, Role, RoleGrant, utcnow

DEFAULT_LEAD = 2  # minutes
TITLE = "党小组会（离线演示）"
PLACE = "社区党群服务中心一楼活动室"


def schedule_soon(session: Session, *, lead_minutes: int = DEFAULT_LEAD, tz: ZoneInfo,
                  now: datetime | None = None) -> EventOccurrence | None:
    """The demo session whose reminder comes in about a minute; None without a branch to hold it."""
    now = now or utcnow()
    ahead = session.scalars(select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id).where(
        Event.title == TITLE, Event.cancelled.is_(False),
        EventOccurrence.starts_at > now + timedelta(minutes=lead_minutes))
        .order_by(EventOccurrence.starts_at))
    for occurrence in ahead:  # its reminder is still to come, with this lead
        if occurrence.event.reminder_offsets_minutes == [lead_minutes]:
            return occurrence
    found = session.execute(select(Branch, Person).join(RoleGrant, RoleGrant.branch_id == Branch.id)
                            .join(Person, Person.id == RoleGrant.person_id)
                            .where(RoleGrant.role == Role.secretary).order_by(Branch.id, Person.id)).first()
    if found is None:
        return None
    branch, secretary = found
    starts = (now + timedelta(minutes=lead_minutes + 1)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    event = create_event(session, secretary, branch_id=branch.id, kind=EventKind.group_meeting, title=TITLE,
                                place=PLACE, starts_at=starts, tz=tz.key, now=now, notify=False,
                                reminder_offsets=[lead_minutes])
    return session.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).first()
