"""Booking a space: free slots, the booking itself, cancelling, the manager's decision, no-shows.

One booking at a time per space: `reserve` takes the space's row (SELECT … FOR UPDATE on
PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE, core.db) before it looks for an
overlap, so two people pressing the same slot at once get one booking and one refusal with the
next free slots (`Taken`). A booking that needs approval is pending, and occupies its slot,
until a manager decides. A booking may be cancelled until Rules.cancel_hours before its start.
Managers record no-shows after the start; Rules.no_show_limit of them within Rules.no_show_days
and the person may not book for Rules.ban_days from the last one. Every change is audited;
refusals are NotAllowed with the reason in Chinese.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed
from core.duties.common import fmt_at
from core.messages import t
from core.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Person,
    Space,
)
from core.spaces import access, hours, notices
from core.spaces.rules import BOOK_AHEAD_DAYS, BUTTON_DAYS, Rules

BS = BookingStatus
PURPOSE_LIMIT = 60  # characters
ALTERNATIVES = 4  # next free slots offered after a conflict

Slot = tuple[datetime, datetime]


class Taken(NotAllowed):
    """The time overlaps another booking; `alternatives`: the next free slots of the same length."""

    def __init__(self, message: str, alternatives: list[Slot]) -> None:
        super().__init__(message)
        self.alternatives = alternatives


def space_by_id(session: Session, space_id: int) -> Space:
    space = session.get(Space, space_id)
    if space is None:
        raise NotAllowed(t("spaces.deny.gone"))
    return space


def booking_by_id(session: Session, booking_id: int, *, lock: bool = False) -> Booking:
    row = session.get(Booking, booking_id, with_for_update=lock, populate_existing=lock)
    if row is None:
        raise NotAllowed(t("spaces.deny.no_booking"))
    return row


def overlapping(session: Session, space_id: int, start: datetime, end: datetime,
                exclude: int | None = None) -> Booking | None:
    """An active booking of the space that overlaps [start, end)."""
    query = select(Booking).where(Booking.space_id == space_id, Booking.status.in_(ACTIVE_STATUSES),
                                  Booking.starts_at < end, Booking.ends_at > start)
    if exclude is not None:
        query = query.where(Booking.id != exclude)
    return session.scalar(query.order_by(Booking.starts_at).limit(1))


def _busy(session: Session, space_id: int, first: datetime, last: datetime) -> list[Slot]:
    return list(session.execute(select(Booking.starts_at, Booking.ends_at).where(
        Booking.space_id == space_id, Booking.status.in_(ACTIVE_STATUSES),
        Booking.starts_at < last, Booking.ends_at > first)).tuples())


def day_slots(space: Space, day: date, tz: ZoneInfo, length: timedelta | None = None) -> list[Slot]:
    """Every slot of `day` inside the opening hours, on the space's grid of slot_minutes."""
    span = hours.opening(space.hours, day, tz)
    if span is None:
        return []
    step = timedelta(minutes=space.slot_minutes)
    length = length or step
    out, start = [], span[0]
    while start + length <= span[1]:
        out.append((start, start + length))
        start += step
    return out


def free_slots(session: Session, space: Space, day: date, tz: ZoneInfo, now: datetime,
               length: timedelta | None = None) -> list[Slot]:
    """The slots of `day` that start after `now` and overlap no active booking."""
    slots = day_slots(space, day, tz, length)
    if not slots:
        return []
    busy = _busy(session, space.id, slots[0][0], slots[-1][1])
    return [(s, e) for s, e in slots if s > now and not any(bs < e and be > s for bs, be in busy)]


def next_free(session: Session, space: Space, after: datetime, length: timedelta, tz: ZoneInfo, now: datetime,
              count: int = ALTERNATIVES) -> list[Slot]:
    """The first `count` free slots of `length` from `after` on, over the next BUTTON_DAYS days."""
    found: list[Slot] = []
    day = after.astimezone(tz).date()
    for _ in range(BUTTON_DAYS):
        found += [s for s in free_slots(session, space, day, tz, now, length) if s[0] >= after]
        if len(found) >= count:
            break
        day += timedelta(days=1)
    return found[:count]


def reserve(session: Session, space_id: int, *, start: datetime, end: datetime, person_id: int | None,
            booked_as: str, organisation: str | None, purpose: str, people: int, status: BookingStatus,
            source: BookingSource, tz: ZoneInfo, now: datetime, occurrence_id: int | None = None,
            shift_id: int | None = None) -> Booking:
    """Hold [start, end) of the space, one booking at a time per space; Taken when it overlaps one."""
    space = session.scalar(select(Space).where(Space.id == space_id).with_for_update()
                           .execution_options(populate_existing=True))
    if space is None:
        raise NotAllowed(t("spaces.deny.gone"))
    other = overlapping(session, space.id, start, end)
    if other is not None:
        alternatives = next_free(session, space, start, end - start, tz, now)
        raise Taken(t("spaces.deny.taken", space=space.name, when=notices.when(other, tz)), alternatives)
    row = Booking(space_id=space.id, person_id=person_id, booked_as=booked_as, organisation=organisation,
                  starts_at=start, ends_at=end, purpose=purpose, people=people, status=status, source=source,
                  occurrence_id=occurrence_id, shift_id=shift_id, created_at=now)
    session.add(row)
    session.flush()
    return row


def clean_purpose(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise NotAllowed(t("spaces.deny.no_purpose"))
    if len(text) > PURPOSE_LIMIT:
        raise NotAllowed(t("spaces.deny.purpose_long", limit=PURPOSE_LIMIT))
    return text


def check_people(space: Space, people: int) -> int:
    if people < 1:
        raise NotAllowed(t("spaces.deny.people"))
    if people > space.capacity:
        raise NotAllowed(t("spaces.deny.capacity", space=space.name, capacity=space.capacity, people=people))
    return people


def check_day(space: Space, day: date, tz: ZoneInfo, now: datetime) -> date:
    """A day that may be booked: not past, within BOOK_AHEAD_DAYS, open."""
    today = now.astimezone(tz).date()
    if day < today:
        raise NotAllowed(t("spaces.deny.past"))
    if day > today + timedelta(days=BOOK_AHEAD_DAYS):
        raise NotAllowed(t("spaces.deny.too_far", days=BOOK_AHEAD_DAYS))
    if hours.opening(space.hours, day, tz) is None:
        raise NotAllowed(t("spaces.deny.closed", space=space.name, hours=hours.describe(space.hours)))
    return day


def check_may_book(session: Session, person: Person | None, space: Space, rules: Rules, tz: ZoneInfo,
                   now: datetime) -> access.Capacity:
    """The capacity `person` books `space` in, if they may book it now (not barred by no-shows)."""
    capacity = access.capacity_for(session, person, space)
    assert person is not None
    until = ban_until(session, person.id, now, rules)
    if until is not None:
        raise NotAllowed(t("spaces.deny.banned", limit=rules.no_show_limit, days=rules.no_show_days,
                           until=fmt_at(until, tz)))
    return capacity


def book(session: Session, person: Person | None, space_id: int, *, start: datetime, end: datetime, purpose: str,
         people: int, source: BookingSource, rules: Rules, tz: ZoneInfo, now: datetime) -> Booking:
    """Book [start, end) of a space (chat or centre): who may, no-show bar, people, opening hours,
    then `reserve`. Pending (with the managers' cards) when the space needs approval."""
    space = space_by_id(session, space_id)
    capacity = check_may_book(session, person, space, rules, tz, now)
    assert person is not None
    purpose = clean_purpose(purpose)
    check_people(space, people)
    if start <= now:
        raise NotAllowed(t("spaces.deny.past"))
    check_day(space, start.astimezone(tz).date(), tz, now)
    if end <= start or not hours.within(space.hours, start, end, tz):
        raise NotAllowed(t("spaces.deny.hours", space=space.name, hours=hours.describe(space.hours)))
    status = BS.pending if space.needs_approval else BS.confirmed
    row = reserve(session, space.id, start=start, end=end, person_id=person.id, booked_as=capacity.kind,
                  organisation=capacity.organisation, purpose=purpose, people=people, status=status,
                  source=source, tz=tz, now=now)
    audit.record(session, person, "space.book", f"booking:{row.id}",
                 {"space": space.code, "as": capacity.kind, "status": status.value}, at=now)
    if status is BS.pending:
        notices.ask_managers(session, row, tz)
    return row


def mine(session: Session, person: Person | None, now: datetime) -> list[Booking]:
    """The person's bookings still to come or under way (pending or confirmed), soonest first."""
    if person is None:
        return []
    return list(session.scalars(select(Booking).where(
        Booking.person_id == person.id, Booking.status.in_(ACTIVE_STATUSES), Booking.ends_at > now)
        .order_by(Booking.starts_at)))


def cancel(session: Session, person: Person | None, booking_id: int, *, rules: Rules, now: datetime) -> Booking:
    """The booker cancels, until Rules.cancel_hours before the start; a duty's booking follows its duty."""
    row = booking_by_id(session, booking_id, lock=True)
    if person is None or row.person_id != person.id:
        raise NotAllowed(t("spaces.deny.not_yours"))
    if row.source is BookingSource.duty:
        raise NotAllowed(t("spaces.deny.duty_booking"))
    if row.status not in ACTIVE_STATUSES:
        raise NotAllowed(t("spaces.deny.not_active", status=t(f"spaces.status.{row.status.value}")))
    if row.starts_at - now < rules.cutoff:
        raise NotAllowed(t("spaces.deny.cutoff", hours=f"{rules.cancel_hours:g}"))
    row.status, row.cancelled_at = BS.cancelled, now
    session.flush()
    audit.record(session, person, "space.cancel", f"booking:{row.id}", {}, at=now)
    return row


def decide(session: Session, actor: Person | None, booking_id: int, *, approve: bool, reason: str = "",
           tz: ZoneInfo, now: datetime) -> Booking:
    """A manager approves a pending booking, or refuses it with a reason; the booker is told."""
    row = booking_by_id(session, booking_id, lock=True)
    space = space_by_id(session, row.space_id)
    actor = access.require_manager(session, actor, space)
    if row.status is not BS.pending:
        raise NotAllowed(t("spaces.deny.decided", status=t(f"spaces.status.{row.status.value}")))
    reason = " ".join(reason.split())
    if not approve and not reason:
        raise NotAllowed(t("spaces.deny.no_reason"))
    if approve and row.starts_at <= now:
        raise NotAllowed(t("spaces.deny.started"))
    row.status = BS.confirmed if approve else BS.refused
    row.decided_by_id, row.decided_at, row.reason = actor.id, now, None if approve else reason
    session.flush()
    audit.record(session, actor, "space.approve" if approve else "space.refuse", f"booking:{row.id}",
                 {"space": space.code}, at=now)
    notices.tell_decision(session, row, tz)
    return row


def no_shows(session: Session, person_id: int, since: datetime) -> list[datetime]:
    return sorted(at for at in session.scalars(select(Booking.no_show_at).where(
        Booking.person_id == person_id, Booking.status == BS.no_show, Booking.no_show_at >= since))
        if at is not None)


def ban_until(session: Session, person_id: int, now: datetime, rules: Rules) -> datetime | None:
    """Until when `person_id` may not book: Rules.ban_days after the no-show that made
    Rules.no_show_limit within Rules.no_show_days; None when they may book now."""
    window, ban = timedelta(days=rules.no_show_days), timedelta(days=rules.ban_days)
    marks = no_shows(session, person_id, now - window - ban)
    until = None
    for i, at in enumerate(marks):
        if sum(1 for m in marks[:i + 1] if m > at - window) >= rules.no_show_limit:
            until = at + ban
    return until if until is not None and until > now else None


def record_no_show(session: Session, actor: Person | None, booking_id: int, *, rules: Rules, tz: ZoneInfo,
                   now: datetime) -> Booking:
    """A manager records that nobody came (after the start); the booker is told, with the bar when
    this no-show reaches the limit."""
    row = booking_by_id(session, booking_id, lock=True)
    space = space_by_id(session, row.space_id)
    actor = access.require_manager(session, actor, space)
    if row.source is BookingSource.duty:
        raise NotAllowed(t("spaces.deny.duty_booking"))
    if row.status not in (BS.confirmed, BS.done):
        raise NotAllowed(t("spaces.deny.not_active", status=t(f"spaces.status.{row.status.value}")))
    if now < row.starts_at:
        raise NotAllowed(t("spaces.deny.not_started"))
    row.status, row.no_show_at = BS.no_show, now
    session.flush()
    audit.record(session, actor, "space.no_show", f"booking:{row.id}", {"space": space.code}, at=now)
    if row.person_id is not None:
        count = len(no_shows(session, row.person_id, now - timedelta(days=rules.no_show_days)))
        notices.tell_no_show(session, row, tz, count=count, days=rules.no_show_days, limit=rules.no_show_limit,
                             until=ban_until(session, row.person_id, now, rules))
    return row


def to_decide(session: Session, person: Person | None, now: datetime) -> list[Booking]:
    """Pending bookings of the spaces `person` manages, soonest first."""
    ids = [s.id for s in access.managed(session, person)]
    return list(session.scalars(select(Booking).where(Booking.space_id.in_(ids), Booking.status == BS.pending,
                                                      Booking.starts_at > now).order_by(Booking.starts_at)))


def started(session: Session, person: Person | None, now: datetime, days: int = 2) -> list[Booking]:
    """Bookings of the spaces `person` manages that started in the last `days` days (for 未到)."""
    ids = [s.id for s in access.managed(session, person)]
    return list(session.scalars(select(Booking).where(
        Booking.space_id.in_(ids), Booking.status.in_((BS.confirmed, BS.done)),
        Booking.source != BookingSource.duty, Booking.starts_at <= now,
        Booking.starts_at > now - timedelta(days=days)).order_by(Booking.starts_at)))
