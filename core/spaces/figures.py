"""Use of each space in a period (`gridbot stats`): bookings that held it (confirmed, done or no
show; not pending, refused or cancelled ones), the hours they held, that as a share of the
opening hours, no-shows and cancellations. A booking counts in the period its start falls in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Booking, BookingStatus, Community, Space
from core.spaces import hours as space_hours

HELD = (BookingStatus.confirmed, BookingStatus.done, BookingStatus.no_show)


@dataclass
class SpaceFigures:
    code: str
    name: str
    community: str
    bookings: int = 0
    hours: float = 0.0
    open_hours: float = 0.0
    no_shows: int = 0
    cancelled: int = 0

    @property
    def share(self) -> float | None:
        """Hours booked over hours open."""
        return round(self.hours / self.open_hours, 4) if self.open_hours else None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "community": self.community, "bookings": self.bookings,
                "hours": round(self.hours, 2), "open_hours": round(self.open_hours, 2), "share": self.share,
                "no_shows": self.no_shows, "cancelled": self.cancelled}


def per_space(session: Session, start: datetime, end: datetime, tz: ZoneInfo,
              community_id: int | None = None) -> list[SpaceFigures]:
    """One row per space (of one community, when given), by code, for bookings starting in [start, end)."""
    query = select(Space, Community.code).join(Community, Community.id == Space.community_id).order_by(Space.code)
    if community_id is not None:
        query = query.where(Space.community_id == community_id)
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz).date()
    rows: dict[int, SpaceFigures] = {}
    for space, community in session.execute(query).tuples():
        rows[space.id] = SpaceFigures(space.code, space.name, community,
                                      open_hours=space_hours.open_minutes(space.hours, first, last, tz) / 60)
    if not rows:
        return []
    for space_id, status, starts_at, ends_at in session.execute(select(
            Booking.space_id, Booking.status, Booking.starts_at, Booking.ends_at).where(
            Booking.space_id.in_(sorted(rows)), Booking.starts_at >= start, Booking.starts_at < end)).tuples():
        row = rows[space_id]
        if status in HELD:
            row.bookings += 1
            row.hours += (ends_at - starts_at).total_seconds() / 3600
        row.no_shows += status is BookingStatus.no_show
        row.cancelled += status is BookingStatus.cancelled
    return list(rows.values())
