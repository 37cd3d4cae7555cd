"""Study sessions and volunteer shifts held in a space book it: source duty, confirmed, no
approval, for the branch (booked_as party_org), neither opening hours nor capacity checked —
the community's own organisations schedule them.

Which space: the one the secretary names (a plan's `space:` code), else the space of the
branch's community whose name the place is, or contains ("党群服务中心会议室" holds "会议室"
only if a space has that name; the longest name wins). None: nothing is booked.

A conflicting booking (someone booked the slot first) is kept: first come, first served, and
a resident's confirmed booking is not taken away by a later plan. The session or shift is
planned all the same, and the secretary is told, once per meeting, which booking holds the
space. A recurring session books each occurrence as it is materialised (`sync_all` on the
leader), so a slot freed later is booked then; moving, cancelling a session or one meeting,
or cancelling a shift moves or frees its bookings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.duties.common import stamp, zone_named
from core.messages import t
from core.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Branch,
    BranchMember,
    Event,
    EventOccurrence,
    Person,
    Shift,
    Space,
)
from core.spaces import access, notices
from core.spaces.booking import Taken, overlapping, reserve


def match(session: Session, community_id: int, place: str) -> Space | None:
    """The community's space that `place` names (exactly, or contained in it; the longest name wins)."""
    place = place.strip()
    spaces = list(session.scalars(select(Space).where(Space.community_id == community_id).order_by(Space.code)))
    exact = [s for s in spaces if s.name == place]
    inside = sorted((s for s in spaces if s.name in place), key=lambda s: -len(s.name))
    found = exact or inside
    return found[0] if found else None


def space_for(session: Session, community_id: int, place: str, space_id: int | None = None) -> int | None:
    """The space a duty at `place` is held in: `space_id` when given (of the same community), else
    the one the place names."""
    if space_id is not None:
        space = session.get(Space, space_id)
        if space is None or space.community_id != community_id:
            raise NotAllowed(t("spaces.deny.duty_elsewhere"))
        return space.id
    found = match(session, community_id, place)
    return found.id if found is not None else None


def space_by_code(session: Session, code: str) -> Space:
    space = session.scalar(select(Space).where(Space.code == code))
    if space is None:
        raise NotAllowed(t("spaces.deny.unknown_space", code=code))
    return space


def _told(session: Session, branch: Branch | None, created_by_id: int | None) -> Person | None:
    """Who hears of a conflict: whoever scheduled it, else the branch's secretary."""
    person_id = created_by_id or (branch.secretary_id if branch is not None else None)
    return session.get(Person, person_id) if person_id is not None else None


def _hold(session: Session, space: Space, *, start: datetime, end: datetime, branch: Branch | None,
          people: int, title: str, told: Person | None, key: str, tz: ZoneInfo, now: datetime,
          occurrence_id: int | None = None, shift_id: int | None = None) -> Booking | None:
    try:
        return reserve(session, space.id, start=start, end=end, person_id=told.id if told else None,
                       booked_as=access.PARTY, organisation=branch.name if branch else None, purpose=title[:200],
                       people=max(1, people), status=BookingStatus.confirmed, source=BookingSource.duty, tz=tz,
                       now=now, occurrence_id=occurrence_id, shift_id=shift_id)
    except Taken:
        other = overlapping(session, space.id, start, end)
        assert other is not None
        notices.tell_duty_conflict(session, told, key, title=title, at=start, space=space, other=other, tz=tz)
        return None


def _drop(row: Booking, now: datetime) -> None:
    row.status, row.cancelled_at = BookingStatus.cancelled, now


def sync_event(session: Session, event: Event, now: datetime) -> None:
    """The bookings of the event's meetings from `now` on, as its space, times and cancellations say."""
    occurrences = list(session.scalars(select(EventOccurrence).where(
        EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= now).order_by(EventOccurrence.starts_at)))
    held = {b.occurrence_id: b for b in session.scalars(select(Booking).where(
        Booking.occurrence_id.in_([o.id for o in occurrences]), Booking.source == BookingSource.duty,
        Booking.status.in_(ACTIVE_STATUSES)))} if occurrences else {}
    if event.space_id is None and not held:
        return
    space = session.get(Space, event.space_id) if event.space_id is not None else None
    branch = session.get(Branch, event.branch_id)
    people = session.scalar(select(func.count()).select_from(BranchMember)
                            .where(BranchMember.branch_id == event.branch_id)) or 1
    tz = zone_named(event.tz)
    for occ in occurrences:
        row, end = held.get(occ.id), occ.starts_at + timedelta(minutes=event.duration_minutes)
        alive = space is not None and not occ.cancelled and not event.cancelled
        if row is not None and (not alive or (row.space_id, row.starts_at, row.ends_at)
                                != (event.space_id, occ.starts_at, end)):
            _drop(row, now)  # cancelled, moved, or held elsewhere now
            session.flush()
            row = None
        if alive and row is None:
            assert space is not None
            _hold(session, space, start=occ.starts_at, end=end, branch=branch, people=people, title=event.title,
                  told=_told(session, branch, event.created_by_id), tz=tz, now=now, occurrence_id=occ.id,
                  key=f"space-duty:{occ.id}:{space.id}:{stamp(occ.starts_at)}")


def sync_shift(session: Session, shift: Shift, now: datetime, tz: ZoneInfo) -> None:
    """The booking of a shift: held while the shift is on, freed when it is cancelled."""
    row = session.scalar(select(Booking).where(Booking.shift_id == shift.id, Booking.source == BookingSource.duty,
                                               Booking.status.in_(ACTIVE_STATUSES)))
    alive = shift.space_id is not None and not shift.cancelled and shift.starts_at > now
    if row is not None and not alive:
        _drop(row, now)
        session.flush()
        return
    if row is None and alive:
        space = session.get(Space, shift.space_id)
        branch = session.get(Branch, shift.branch_id) if shift.branch_id is not None else None
        assert space is not None
        _hold(session, space, start=shift.starts_at, end=shift.ends_at, branch=branch, people=shift.capacity,
              title=shift.title, told=_told(session, branch, shift.created_by_id), tz=tz, now=now,
              shift_id=shift.id, key=f"space-duty:shift{shift.id}:{space.id}:{stamp(shift.starts_at)}")


def sync_all(session: Session, now: datetime, tz: ZoneInfo) -> int:
    """On the leader: every live event held in a space (its meetings materialised since), and every
    shift still to come whose space was taken (a slot freed since is booked); how many."""
    events = list(session.scalars(select(Event).where(Event.space_id.is_not(None), Event.cancelled == false())))
    for event in events:
        sync_event(session, event, now)
    held = select(Booking.shift_id).where(Booking.shift_id.is_not(None), Booking.status.in_(ACTIVE_STATUSES))
    waiting = list(session.scalars(select(Shift).where(Shift.space_id.is_not(None), Shift.cancelled == false(),
                                                       Shift.starts_at > now, Shift.id.not_in(held))))
    for shift in waiting:
        sync_shift(session, shift, now, tz)
    return len(events) + len(waiting)
