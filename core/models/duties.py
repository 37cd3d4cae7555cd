"""Party-branch duties: scheduled events (三会一课, 主题党日, study) and volunteer shifts.

An Event is what the secretary schedules (one-off, or recurring by an RFC 5545 RRULE
interpreted in the event's zone); EventOccurrence rows materialise its next weeks so
that RSVPs, leave and check-ins attach to one concrete meeting. Times are stored UTC.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow

DEFAULT_REMINDER_OFFSETS = [1440, 60]  # minutes before the start: 24 h and 1 h


def _default_offsets() -> list[int]:
    return list(DEFAULT_REMINDER_OFFSETS)


class EventKind(str, enum.Enum):
    general_meeting = "general_meeting"  # 支部党员大会, quarterly
    committee = "committee"  # 支委会, monthly
    group_meeting = "group_meeting"  # 党小组会, monthly
    lecture = "lecture"  # 党课, quarterly
    theme_day = "theme_day"  # 主题党日, monthly
    study = "study"  # one-off study session


class Audience(str, enum.Enum):
    branch = "branch"  # every member of the branch
    party_group = "party_group"  # the members of one party group
    people = "people"  # the people named in event_invitees


class AttendanceStatus(str, enum.Enum):
    attending = "attending"  # 参加
    leave = "leave"  # 请假, with a reason
    checked_in = "checked_in"  # 签到


class SignupStatus(str, enum.Enum):
    active = "active"
    cancelled = "cancelled"
    swapped = "swapped"  # handed over to `swapped_to_id`


class Event(TimestampMixin, Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[EventKind] = mapped_column(SAEnum(EventKind, native_enum=False, length=32))
    title: Mapped[str] = mapped_column(String(200))
    place: Mapped[str] = mapped_column(String(200))
    agenda: Mapped[str] = mapped_column(Text, default="")
    # The first occurrence, and DTSTART of `rrule` (read as wall-clock time in `tz`).
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_minutes: Mapped[int] = mapped_column(Integer, default=90)
    rrule: Mapped[str | None] = mapped_column(String(500), default=None)
    tz: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    audience: Mapped[Audience] = mapped_column(SAEnum(Audience, native_enum=False, length=16),
                                               default=Audience.branch)
    party_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("party_groups.id", ondelete="SET NULL"), default=None)
    mandatory: Mapped[bool] = mapped_column(default=True)
    reminder_offsets_minutes: Mapped[list[int]] = mapped_column(JSON, default=_default_offsets)
    checkin_before_minutes: Mapped[int] = mapped_column(Integer, default=30)
    checkin_after_minutes: Mapped[int] = mapped_column(Integer, default=60)
    cancelled: Mapped[bool] = mapped_column(default=False)
    # Bumped by every change, so each change notice has its own dedupe key.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"),
                                                      default=None)
    # The 共享空间 it is held in: its occurrences book it (core.spaces.duty)
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="SET NULL"), default=None)

    invitees: Mapped[list[EventInvitee]] = relationship(cascade="all, delete-orphan")


class EventInvitee(Base):
    """A named attendee of an event whose audience is `people`."""

    __tablename__ = "event_invitees"
    __table_args__ = (UniqueConstraint("event_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class EventOccurrence(Base):
    __tablename__ = "event_occurrences"
    __table_args__ = (UniqueConstraint("event_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    cancelled: Mapped[bool] = mapped_column(default=False)
    # Set whenever the reminder jobs of this occurrence must be (re)scheduled; the
    # scheduler's sync clears it after writing the jobs.
    reminders_dirty: Mapped[bool] = mapped_column(default=True, index=True)

    event: Mapped[Event] = relationship()


class Attendance(Base):
    """One person's answer to one occurrence: 参加, 请假 (with a reason) or 签到."""

    __tablename__ = "attendances"
    __table_args__ = (UniqueConstraint("occurrence_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("event_occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    status: Mapped[AttendanceStatus] = mapped_column(SAEnum(AttendanceStatus, native_enum=False, length=16))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ReminderMute(Base):
    """A person does not want reminders of one (non-mandatory) event."""

    __tablename__ = "reminder_mutes"
    __table_args__ = (UniqueConstraint("person_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)


class Shift(TimestampMixin, Base):
    """A volunteer shift (执勤), published by a branch (branch_id) or a community (community_id only)."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"),
                                                  default=None, index=True)
    title: Mapped[str] = mapped_column(String(200))
    place: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(Integer)
    cancel_cutoff_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    cancelled: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"),
                                                      default=None)
    # The 共享空间 it is held in, booked for its hours (core.spaces.duty)
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="SET NULL"), default=None)


class ShiftSignup(Base):
    __tablename__ = "shift_signups"
    __table_args__ = (UniqueConstraint("shift_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    status: Mapped[SignupStatus] = mapped_column(SAEnum(SignupStatus, native_enum=False, length=16),
                                                 default=SignupStatus.active)
    signed_up_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    swap_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    swapped_to_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"),
                                                      default=None)

    @property
    def swap_requested(self) -> bool:
        return self.status is SignupStatus.active and self.swap_requested_at is not None


# APScheduler's job table (apscheduler.jobstores.sqlalchemy.SQLAlchemyJobStore), declared
# here so that Alembic owns it like every other table; the job store finds it in place.
scheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
