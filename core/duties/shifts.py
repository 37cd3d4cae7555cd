"""Volunteer shifts: publishing, sign-up and cancellation before the cutoff, swaps, the roster, short-handed shifts.

Every function works in the caller's transaction and never commits; refusals raise NotAllowed
with a Chinese reason fit to show the person. Button data: core.presentation.callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, scope_of_branch
from core.duties.common import (
    SHORT_NOTICE,
    branch_by_id,
    community_branches,
    fmt_at,
    hour_minute,
    may_manage_shift,
    now_or_utc,
    require_person,
    stamp,
    tell_person,
)
from core.messages import t
from core.models import (
    BranchMember,
    Building,
    EventKind,
    Grid,
    Person,
    Role,
    RoleGrant,
    Shift,
    ShiftSignup,
    SignupStatus,
)
from core.presentation import callbacks
from core.spaces import duty as space_duty

# Suggested recurrence per kind (BRIEF glossary); day and time come from starts_at.
KIND_RULES: dict[EventKind, str | None] = {
    EventKind.general_meeting: "FREQ=MONTHLY;INTERVAL=3",
    EventKind.committee: "FREQ=MONTHLY",
    EventKind.group_meeting: "FREQ=MONTHLY",
    EventKind.lecture: "FREQ=MONTHLY;INTERVAL=3",
    EventKind.theme_day: "FREQ=MONTHLY",
    EventKind.study: None,
}


# -- small helpers ---------------------------------------------------------------


# -- permissions -------------------------------------------------------------------


# -- recurrence --------------------------------------------------------------------


# -- events ------------------------------------------------------------------------


# -- what a member sees --------------------------------------------------------------


# -- what the secretary sees ----------------------------------------------------------


# -- volunteer shifts -----------------------------------------------------------------


def shift_by_id(session: Session, shift_id: int, *, lock: bool = False) -> Shift:
    query = select(Shift).where(Shift.id == shift_id)
    if lock:  # serialise sign-ups to one shift (SQLite's BEGIN IMMEDIATE already does)
        query = query.with_for_update()
    shift = session.scalar(query)
    if shift is None:
        raise NotAllowed(t("duty.deny.shift_not_found"))
    return shift


def shift_text(shift: Shift, tz: ZoneInfo) -> dict[str, Any]:
    return dict(title=shift.title, place=shift.place, when=fmt_at(shift.starts_at, tz),
                end=hour_minute(shift.ends_at, tz), capacity=shift.capacity,
                note=t("duty.note_line", note=shift.note) if shift.note else "")


def eligible_for_shift(session: Session, shift: Shift) -> list[Person]:
    """Members of the shift's branch (a community shift: of every branch in the community), the
    在职党员 registered in its grids, and registered volunteers: scoped to it, or living in its grid (community)."""
    branches = ([branch_by_id(session, shift.branch_id)] if shift.branch_id is not None
                else community_branches(session, shift.community_id))
    branch_ids = [b.id for b in branches]
    grid_ids = ([branches[0].grid_id] if shift.branch_id is not None else
                list(session.scalars(select(Grid.id).where(Grid.community_id == shift.community_id))))
    members = select(BranchMember.person_id).where(BranchMember.branch_id.in_(branch_ids))
    homes = select(Building.id).where(Building.grid_id.in_(grid_ids))
    volunteers = select(RoleGrant.person_id).join(Person, Person.id == RoleGrant.person_id).where(
        RoleGrant.role == Role.volunteer, or_(
            RoleGrant.branch_id.in_(branch_ids), RoleGrant.grid_id.in_(grid_ids),
            RoleGrant.community_id == shift.community_id,
            RoleGrant.community_id.is_(None) & RoleGrant.grid_id.is_(None) & RoleGrant.branch_id.is_(None)
            & Person.building_id.in_(homes)))
    # 在职党员 (双报到) registered in the shift's grids
    dual = select(RoleGrant.person_id).where(RoleGrant.role == Role.dual_member, RoleGrant.grid_id.in_(grid_ids))
    return list(session.scalars(select(Person).where(or_(Person.id.in_(members), Person.id.in_(volunteers),
                                                         Person.id.in_(dual)))
                                .order_by(Person.id)))


def active_signups(session: Session, shift: Shift) -> list[ShiftSignup]:
    return list(session.scalars(select(ShiftSignup).where(ShiftSignup.shift_id == shift.id,
                                                          ShiftSignup.status == SignupStatus.active)
                                .order_by(ShiftSignup.signed_up_at, ShiftSignup.id)))


def publish_shift(session: Session, actor: Person | None, *, title: str, place: str, starts_at: datetime,
                  ends_at: datetime, capacity: int, branch_id: int | None = None,
                  community_id: int | None = None, note: str = "", cancel_cutoff_minutes: int = 1440,
                  now: datetime | None = None, notify: bool = True, tz: ZoneInfo,
                  space_id: int | None = None) -> Shift:
    """Publish a shift of a branch (`branch_id`) or of a community (`community_id` only) and invite
    everyone eligible. Sign-ups may be cancelled until `cancel_cutoff_minutes` before the start.
    Held in a 共享空间 (`space_id`, or the one the place names), it books it (core.spaces.duty)."""
    now = now_or_utc(now)
    if branch_id is not None:
        community_id = scope_of_branch(session, branch_by_id(session, branch_id)).community_id
    if community_id is None:
        raise NotAllowed(t("duty.deny.no_scope"))
    shift = Shift(community_id=community_id, branch_id=branch_id, title=title.strip(), place=place.strip(),
                  note=note.strip(), starts_at=starts_at.replace(microsecond=0),
                  ends_at=ends_at.replace(microsecond=0), capacity=capacity,
                  cancel_cutoff_minutes=cancel_cutoff_minutes, cancelled=False)
    actor = require_person(actor)
    if not may_manage_shift(session, actor, shift):
        raise NotAllowed(t("duty.deny.not_shift_manager"))
    if not shift.title or not shift.place:
        raise NotAllowed(t("duty.deny.title_place"))
    if shift.starts_at <= now:
        raise NotAllowed(t("duty.deny.in_past"))
    if shift.ends_at <= shift.starts_at:
        raise NotAllowed(t("duty.deny.bad_shift_time"))
    if capacity < 1:
        raise NotAllowed(t("duty.deny.bad_capacity"))
    if cancel_cutoff_minutes < 0:
        raise NotAllowed(t("duty.deny.bad_offsets"))
    shift.created_by_id = actor.id
    shift.space_id = space_duty.space_for(session, community_id, shift.place, space_id)
    session.add(shift)
    session.flush()
    space_duty.sync_shift(session, shift, now, tz)
    if notify:
        payload = {"text": t("duty.shift_published", **shift_text(shift, tz)),
                   "buttons": [[{"text": t("duty.button_signup"), "callback_data": callbacks.shift_action("s", shift.id)}]]}
        for person in eligible_for_shift(session, shift):
            tell_person(session, person, f"shift-published:{shift.id}:{person.id}", payload)
    return shift


def cancel_shift(session: Session, shift_id: int, actor: Person | None, *, now: datetime | None = None,
                 tz: ZoneInfo) -> Shift:
    shift = shift_by_id(session, shift_id)
    if not may_manage_shift(session, actor, shift):
        raise NotAllowed(t("duty.deny.not_shift_manager"))
    if shift.starts_at <= now_or_utc(now):
        raise NotAllowed(t("duty.deny.shift_started"))
    if not shift.cancelled:
        shift.cancelled = True
        space_duty.sync_shift(session, shift, now_or_utc(now), tz)
        payload = {"text": t("duty.shift_cancelled", **shift_text(shift, tz))}
        for signup in active_signups(session, shift):
            tell_person(session, session.get(Person, signup.person_id), f"shift-cancelled:{shift.id}:{signup.person_id}",
                  payload)
    return shift


def _open_shift(session: Session, shift_id: int, person: Person | None, now: datetime) -> tuple[Shift, Person]:
    person = require_person(person)
    shift = shift_by_id(session, shift_id, lock=True)
    if shift.cancelled:
        raise NotAllowed(t("duty.deny.shift_cancelled"))
    if now >= shift.starts_at:
        raise NotAllowed(t("duty.deny.shift_started"))
    return shift, person


def _signup(session: Session, shift: Shift, person: Person) -> ShiftSignup | None:
    return session.scalar(select(ShiftSignup).where(ShiftSignup.shift_id == shift.id,
                                                    ShiftSignup.person_id == person.id))


def _activate(session: Session, shift: Shift, person: Person, now: datetime) -> ShiftSignup:
    row = _signup(session, shift, person)
    if row is None:
        row = ShiftSignup(shift_id=shift.id, person_id=person.id)
        session.add(row)
    row.status, row.signed_up_at, row.swap_requested_at, row.swapped_to_id = SignupStatus.active, now, None, None
    session.flush()
    return row


def _require_eligible(session: Session, shift: Shift, person: Person) -> None:
    if person.id not in {p.id for p in eligible_for_shift(session, shift)}:
        raise NotAllowed(t("duty.deny.not_eligible"))


def sign_up(session: Session, shift_id: int, person: Person | None, *, now: datetime | None = None) -> ShiftSignup:
    """Take a place on a shift: not when it is full, started, or already yours."""
    now = now_or_utc(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _signup(session, shift, person)
    if row is not None and row.status is SignupStatus.active:
        raise NotAllowed(t("duty.deny.already_signed_up"))
    _require_eligible(session, shift, person)
    if len(active_signups(session, shift)) >= shift.capacity:
        raise NotAllowed(t("duty.deny.full"))
    return _activate(session, shift, person, now)


def _my_active(session: Session, shift: Shift, person: Person) -> ShiftSignup:
    row = _signup(session, shift, person)
    if row is None or row.status is not SignupStatus.active:
        raise NotAllowed(t("duty.deny.not_signed_up"))
    return row


def cancel_signup(session: Session, shift_id: int, person: Person | None, *,
                  now: datetime | None = None, tz: ZoneInfo) -> ShiftSignup:
    """Give the place back, only before the shift's cancel cutoff (after it: ask for a swap)."""
    now = now_or_utc(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _my_active(session, shift, person)
    deadline = shift.starts_at - timedelta(minutes=shift.cancel_cutoff_minutes)
    if now >= deadline:
        raise NotAllowed(t("duty.deny.cutoff", deadline=fmt_at(deadline, tz)))
    row.status, row.swap_requested_at = SignupStatus.cancelled, None
    session.flush()
    return row


def request_swap(session: Session, shift_id: int, person: Person | None, *, now: datetime | None = None,
                 tz: ZoneInfo) -> ShiftSignup:
    """Ask for someone to take your place (allowed until the start); eligible others are told."""
    now = now_or_utc(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _my_active(session, shift, person)
    if row.swap_requested_at is not None:
        return row
    row.swap_requested_at = now
    session.flush()
    on_shift = {s.person_id for s in active_signups(session, shift)}
    payload = {"text": t("duty.swap_offer", name=person.display_name, **shift_text(shift, tz)),
               "buttons": [[{"text": t("duty.button_take"), "callback_data": callbacks.shift_action("t", row.id)}]]}
    for other in eligible_for_shift(session, shift):
        if other.id not in on_shift:
            tell_person(session, other, f"swap-offer:{row.id}:{stamp(now)}:{other.id}", payload)
    return row


def take_swap(session: Session, signup_id: int, person: Person | None, *, now: datetime | None = None,
              tz: ZoneInfo) -> ShiftSignup:
    """Take the place someone asked to swap; theirs becomes `swapped`, the giver is told."""
    now = now_or_utc(now)
    offered = session.get(ShiftSignup, signup_id)
    if offered is None:
        raise NotAllowed(t("duty.deny.no_swap"))
    shift, person = _open_shift(session, offered.shift_id, person, now)
    session.refresh(offered)  # re-read under the shift's lock
    if not offered.swap_requested:
        raise NotAllowed(t("duty.deny.no_swap"))
    if offered.person_id == person.id:
        raise NotAllowed(t("duty.deny.own_swap"))
    mine = _signup(session, shift, person)
    if mine is not None and mine.status is SignupStatus.active:
        raise NotAllowed(t("duty.deny.already_signed_up"))
    _require_eligible(session, shift, person)
    offered.status, offered.swapped_to_id = SignupStatus.swapped, person.id
    session.flush()
    row = _activate(session, shift, person, now)
    giver = session.get(Person, offered.person_id)
    tell_person(session, giver, f"swap-taken:{offered.id}:{person.id}", {"text": t(
        "duty.swap_taken", name=person.display_name, **shift_text(shift, tz))})
    return row


@dataclass(frozen=True)
class RosterEntry:
    shift: Shift
    people: list[tuple[Person, bool]]  # who is on it, and whether they asked for a swap

    @property
    def missing(self) -> int:
        return max(0, self.shift.capacity - len(self.people))


def roster(session: Session, *, start: datetime, end: datetime, branch_id: int | None = None,
           community_id: int | None = None) -> list[RosterEntry]:
    """Who is where: live shifts starting in [start, end), of a branch or a community (all its shifts)."""
    query = select(Shift).where(Shift.cancelled == false(), Shift.starts_at >= start, Shift.starts_at < end)
    if branch_id is not None:
        query = query.where(Shift.branch_id == branch_id)
    if community_id is not None:
        query = query.where(Shift.community_id == community_id)
    out = []
    for shift in session.scalars(query.order_by(Shift.starts_at, Shift.place, Shift.id)):
        people = [(p, s.swap_requested) for s in active_signups(session, shift)
                  if (p := session.get(Person, s.person_id)) is not None]
        out.append(RosterEntry(shift, people))
    return out


def roster_text(entries: Sequence[RosterEntry], tz: ZoneInfo) -> str:
    if not entries:
        return t("duty.roster_none")
    lines = [t("duty.roster_header")]
    for e in entries:
        names = "、".join(t("duty.roster_swap", name=p.display_name) if swap else p.display_name
                         for p, swap in e.people) or t("duty.none")
        lines.append(t("duty.roster_line", count=len(e.people), names=names, **shift_text(e.shift, tz)))
    return "\n".join(lines)


def short_shifts(session: Session, now: datetime | None = None,
                 within: timedelta = SHORT_NOTICE) -> list[tuple[Shift, int]]:
    """Live shifts starting within `within` that still have fewer people than places, with their count."""
    now = now_or_utc(now)
    counts = (select(ShiftSignup.shift_id, func.count().label("n")).where(ShiftSignup.status == SignupStatus.active)
              .group_by(ShiftSignup.shift_id).subquery())
    rows = session.execute(
        select(Shift, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.shift_id == Shift.id)
        .where(Shift.cancelled == false(), Shift.starts_at > now, Shift.starts_at <= now + within,
               func.coalesce(counts.c.n, 0) < Shift.capacity)
        .order_by(Shift.starts_at, Shift.id)).all()
    return [(shift, int(n)) for shift, n in rows]


def shift_managers(session: Session, shift: Shift) -> list[Person]:
    ids: list[int] = [shift.created_by_id] if shift.created_by_id else []
    if shift.branch_id is not None:
        secretary = branch_by_id(session, shift.branch_id).secretary_id
        ids += [secretary] if secretary else []
    else:
        ids += list(session.scalars(select(RoleGrant.person_id).where(
            RoleGrant.role == Role.community_admin, RoleGrant.community_id == shift.community_id)))
    return [p for i in dict.fromkeys(ids) if (p := session.get(Person, i)) is not None]


def notify_short_shifts(session: Session, now: datetime | None = None, *, tz: ZoneInfo) -> int:
    """Tell the publisher and the secretary (community shifts: the admins) of every short shift, once."""
    queued = 0
    for shift, count in short_shifts(session, now):
        payload = {"text": t("duty.shift_short", count=count, missing=shift.capacity - count,
                             **shift_text(shift, tz))}
        for person in shift_managers(session, shift):
            queued += tell_person(session, person, f"shift-short:{shift.id}:{person.id}", payload)
    return queued
