"""共享空间 (共享小铺 / 微阵地): the rooms units and the community lend, and their bookings.

A Space comes from the registry (`spaces:`): its community, capacity, opening hours per weekday,
equipment, whether a booking needs its manager's approval, who may book it and who manages it.
A Booking holds one space for [starts_at, ends_at): pending (waiting for approval) and
confirmed bookings occupy it; refused, cancelled, no_show and done ones do not. Two active
bookings of one space never overlap: every booking takes the space's row lock first
(core.spaces.booking.reserve), and the same start twice is refused by a partial unique index.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class BookingStatus(str, enum.Enum):
    pending = "pending"  # waiting for the space manager's approval
    confirmed = "confirmed"
    refused = "refused"  # by the manager (with a reason), or not decided before the start
    cancelled = "cancelled"
    no_show = "no_show"  # recorded by the manager after the start
    done = "done"  # it took place (the leader marks it after the end)


ACTIVE_STATUSES = (BookingStatus.pending, BookingStatus.confirmed)


class BookingSource(str, enum.Enum):
    chat = "chat"  # /yuyue
    centre = "centre"  # the command centre's form
    duty = "duty"  # a study session or a shift scheduled in the space (core.spaces.duty)


def _enum(cls: type[enum.Enum]) -> SAEnum:
    return SAEnum(cls, native_enum=False, length=16)


def _default_bookers() -> list[str]:
    return ["party_org", "resident", "enterprise"]


class Space(TimestampMixin, Base):
    """A bookable room or corner of a community. `hours`: {"0".."6" (Monday..Sunday): ["08:30",
    "20:00"]}, a day missing is closed; `bookers`: any of party_org, resident, enterprise."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int] = mapped_column(Integer)
    hours: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs_approval: Mapped[bool] = mapped_column(default=False, server_default=false())
    bookers: Mapped[list[str]] = mapped_column(JSON, default=_default_bookers)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=60)
    address: Mapped[str | None] = mapped_column(Text, default=None)


class SpaceManager(Base):
    """A person who approves bookings of a space and records no-shows (the registry's list)."""

    __tablename__ = "space_managers"
    __table_args__ = (UniqueConstraint("space_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class Booking(Base):
    """One booking of a space. `booked_as`: resident, party_org, enterprise (the capacity the person
    booked in, core.spaces.access) or duty; `organisation`: the branch or unit booked for."""

    __tablename__ = "space_bookings"
    __table_args__ = (
        Index("uq_space_bookings_active_start", "space_id", "starts_at", unique=True,
              sqlite_where=text("status IN ('pending', 'confirmed')"),
              postgresql_where=text("status IN ('pending', 'confirmed')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True,
                                                  default=None)
    booked_as: Mapped[str] = mapped_column(String(16))
    organisation: Mapped[str | None] = mapped_column(String(200), default=None)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purpose: Mapped[str] = mapped_column(String(200))
    people: Mapped[int] = mapped_column(Integer)
    status: Mapped[BookingStatus] = mapped_column(_enum(BookingStatus), index=True)
    source: Mapped[BookingSource] = mapped_column(_enum(BookingSource))
    occurrence_id: Mapped[int | None] = mapped_column(
        ForeignKey("event_occurrences.id", ondelete="SET NULL"), index=True, default=None)
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id", ondelete="SET NULL"), index=True,
                                                 default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # the smallest reminder offset (minutes before the start) queued so far: 1440, then 60
    reminded: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
