"""The command centre's 共享空间 page: the spaces of the person's communities (core.centre.scope)
with their bookings of the next 7 days and the free slots to book with the form; 批准 / 拒绝 /
未到 where the person manages the space (core.spaces does every check, as in chat).

Who booked is named only to the space's managers (they approve), and each showing of names is
an audit entry (`space.bookers`); everyone else sees the organisation, or 居民."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed
from core.centre.scope import View
from core.messages import t
from core.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Community,
    Grid,
    Person,
    Space,
)
from core.spaces import access, booking, hours, notices, views
from core.spaces.rules import BUTTON_DAYS

BS = BookingStatus


@dataclass
class Row:
    id: int
    when: str
    purpose: str
    people: int
    status: str
    who: str
    may_decide: bool = False
    may_no_show: bool = False


@dataclass
class SpaceWeek:
    id: int
    name: str
    community: str
    facts: str
    manager: bool
    may_book: bool
    bookings: list[Row] = field(default_factory=list)
    free: list[tuple[str, str]] = field(default_factory=list)  # (value "start-end" epoch seconds, label)


def communities(session: Session, view: View) -> set[int]:
    grids = session.scalars(select(Grid.community_id).where(Grid.id.in_(sorted(view.grid_ids))))
    return set(view.community_ids) | {c for c in grids if c is not None}


def in_view(session: Session, view: View, space_id: int) -> Space | None:
    space = session.get(Space, space_id)
    return space if space is not None and space.community_id in communities(session, view) else None


def booking_in_view(session: Session, view: View, booking_id: int) -> Booking | None:
    row = session.get(Booking, booking_id)
    return row if row is not None and in_view(session, view, row.space_id) is not None else None


def _row(session: Session, row: Booking, tz: ZoneInfo, manager: bool, now: datetime) -> Row:
    label = row.organisation or t(f"spaces.booker.{row.booked_as}")
    return Row(row.id, notices.when(row, tz), row.purpose, row.people, t(f"spaces.status.{row.status.value}"),
               notices.booker(session, row) if manager else label,
               may_decide=manager and row.status is BS.pending and row.starts_at > now,
               may_no_show=manager and row.status in (BS.confirmed, BS.done) and row.starts_at <= now
               and row.source is not BookingSource.duty)


def week(session: Session, view: View, person: Person | None, now: datetime, tz: ZoneInfo) -> list[SpaceWeek]:
    """Each space in view with its bookings from today for BUTTON_DAYS days (and those started in
    the last two, for 未到), and its free slots of those days when the person may book it."""
    today = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    first, last = today - timedelta(days=2), today + timedelta(days=BUTTON_DAYS)
    out, named = [], 0
    for space in views.in_communities(session, communities(session, view)):
        community = session.get(Community, space.community_id)
        manager = access.is_manager(session, person, space)
        may_book = bool(access.capacities(session, person, space))
        rows = session.scalars(select(Booking).where(
            Booking.space_id == space.id, Booking.starts_at >= first, Booking.starts_at < last,
            Booking.status.in_((*ACTIVE_STATUSES, BS.done, BS.no_show))).order_by(Booking.starts_at))
        shown = [_row(session, r, tz, manager, now) for r in rows if r.starts_at >= today or manager]
        named += len(shown) if manager else 0
        entry = SpaceWeek(space.id, space.name, community.name if community else "", t(
            "web.spaces_facts", capacity=space.capacity, hours=hours.describe(space.hours),
            equipment="、".join(space.equipment) or t("spaces.unknown"), who=access.who_may(space),
            approval=t("spaces.needs_approval") if space.needs_approval else ""), manager, may_book, shown)
        if may_book:
            for i in range(BUTTON_DAYS):
                day = today.date() + timedelta(days=i)
                entry.free += [(f"{int(s.timestamp())}-{int(e.timestamp())}", views.slot_day_text((s, e), tz))
                               for s, e in booking.free_slots(session, space, day, tz, now)]
        out.append(entry)
    if named:
        audit.record(session, person, "space.bookers", "centre:spaces", {"shown": named}, at=now)
    return out


def parse_slot(value: str) -> tuple[datetime, datetime]:
    """"<start>-<end>" in epoch seconds (the form's option); NotAllowed when it is not."""
    try:
        start, end = (datetime.fromtimestamp(int(v), ZoneInfo("UTC")) for v in value.split("-"))
    except (TypeError, ValueError) as exc:
        raise NotAllowed(t("web.spaces_no_slot")) from exc
    return start, end


def people_of(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError as exc:
        raise NotAllowed(t("spaces.deny.people")) from exc
