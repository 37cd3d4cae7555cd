"""Attendance: 参加, 请假 with a reason, 签到 within the check-in window, muting reminders."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.duties.common import (
    A,
    fmt_at,
    hour_minute,
    insert_ignore,
    now_or_utc,
    require_person,
    zone_named,
)
from core.duties.events import attendees, event_by_id, occurrence_by_id
from core.messages import t
from core.models import (
    Attendance,
    AttendanceStatus,
    EventOccurrence,
    Person,
    ReminderMute,
)


def attendance_of(session: Session, occ: EventOccurrence, person: Person) -> Attendance | None:
    return session.scalar(select(Attendance).where(Attendance.occurrence_id == occ.id,
                                                   Attendance.person_id == person.id))


def answerable(session: Session, occurrence_id: int, person: Person | None) -> tuple[EventOccurrence, Person]:
    person = require_person(person)
    occ = occurrence_by_id(session, occurrence_id)
    if occ.cancelled or occ.event.cancelled:
        raise NotAllowed(t("duty.deny.cancelled"))
    if person.id not in {p.id for p in attendees(session, occ)}:
        raise NotAllowed(t("duty.deny.not_invited"))
    return occ, person


def upsert_attendance(session: Session, occ: EventOccurrence, person: Person, status: AttendanceStatus,
                       now: datetime) -> Attendance:
    row = attendance_of(session, occ, person)
    if row is None:  # a double click may race us: keep one row
        insert_ignore(session, Attendance, [dict(occurrence_id=occ.id, person_id=person.id, status=status,
                                                  at=now)], ["occurrence_id", "person_id"])
        row = attendance_of(session, occ, person)
        assert row is not None
    row.status, row.at = status, now
    return row


def rsvp(session: Session, occurrence_id: int, person: Person | None, attending: bool,
         reason: str | None = None, *, now: datetime | None = None) -> Attendance:
    """参加 (attending=True) or 请假 with a reason, until the occurrence starts; may be changed until then."""
    now = now_or_utc(now)
    occ, person = answerable(session, occurrence_id, person)
    if now >= occ.starts_at:
        raise NotAllowed(t("duty.deny.started"))
    reason = (reason or "").strip()
    if not attending and not reason:
        raise NotAllowed(t("duty.deny.reason_needed"))
    row = attendance_of(session, occ, person)
    if row is not None and row.status is A.checked_in:
        raise NotAllowed(t("duty.deny.already_checked_in"))
    row = upsert_attendance(session, occ, person, A.attending if attending else A.leave, now)
    row.reason = None if attending else reason[:500]
    session.flush()
    return row


def check_rsvp(session: Session, occurrence_id: int, person: Person | None, *,
               now: datetime | None = None) -> EventOccurrence:
    """What `rsvp` checks before it needs the answer (invited, not cancelled, not started, not
    checked in): the bot asks for a 请假 reason only when these pass."""
    now = now_or_utc(now)
    occ, person = answerable(session, occurrence_id, person)
    if now >= occ.starts_at:
        raise NotAllowed(t("duty.deny.started"))
    row = attendance_of(session, occ, person)
    if row is not None and row.status is A.checked_in:
        raise NotAllowed(t("duty.deny.already_checked_in"))
    return occ


def checkin_window(occ: EventOccurrence) -> tuple[datetime, datetime]:
    event = occ.event
    return (occ.starts_at - timedelta(minutes=event.checkin_before_minutes),
            occ.starts_at + timedelta(minutes=event.checkin_after_minutes))


def check_in(session: Session, occurrence_id: int, person: Person | None, *,
             now: datetime | None = None) -> Attendance:
    """签到, only inside the occurrence's check-in window; idempotent."""
    now = now_or_utc(now)
    occ, person = answerable(session, occurrence_id, person)
    opens, closes = checkin_window(occ)
    if not opens <= now <= closes:
        tz = zone_named(occ.event.tz)
        raise NotAllowed(t("duty.deny.checkin_window", opens=fmt_at(opens, tz), closes=hour_minute(closes, tz)))
    row = attendance_of(session, occ, person)
    if row is not None and row.status is A.checked_in:
        return row
    row = upsert_attendance(session, occ, person, A.checked_in, now)
    row.checked_in_at = now
    session.flush()
    return row


def mute_reminders(session: Session, event_id: int, person: Person | None, muted: bool = True) -> None:
    """Stop (or restart) reminders of a non-mandatory event for one person."""
    person = require_person(person)
    event = event_by_id(session, event_id)
    if muted and event.mandatory:
        raise NotAllowed(t("duty.deny.mandatory_mute"))
    row = session.scalar(select(ReminderMute).where(ReminderMute.event_id == event.id,
                                                    ReminderMute.person_id == person.id))
    if muted and row is None:
        insert_ignore(session, ReminderMute, [dict(event_id=event.id, person_id=person.id)],
                       ["person_id", "event_id"])
    elif not muted and row is not None:
        session.delete(row)
    session.flush()

# What "我请假" messages say besides a reason: the request itself, the event, the day.
_STOCK_LEAVE = re.compile(
    r"请假|去不了|来不了|参加不了|赶不回来|缺席|不好意思|抱歉|对不起|"
    r"党课|党员大会|支部大会|主题党日|党日活动|党小组会|支委会|组织生活会|活动|学习|开会|会议|"
    r"今天|明天|后天|周[一二三四五六日天末]|星期[一二三四五六日天]|上午|下午|晚上|这周|下周|"
    r"[我要想得帮请个假一下这次那天了吧啊哦呢的就不参加，。,.!！？?~\s]")


def leave_reason(text: str) -> str | None:
    """The member's words as a 请假 reason if they say more than "我请假" / "去不了"; else None."""
    text = text.strip()
    return text[:500] if len(_STOCK_LEAVE.sub("", text)) >= 2 else None
