"""A member's duties at a glance: the coming sessions and shifts, with the buttons to answer them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from core.duties.attendance import attendance_of, checkin_window
from core.duties.common import A, fmt_at, hour_minute, now_or_utc, zone_named
from core.duties.recurrence import occurrences
from core.messages import t
from core.models import (
    Audience,
    BranchMember,
    Event,
    EventInvitee,
    Person,
    Shift,
    ShiftSignup,
    SignupStatus,
)
from core.presentation import callbacks


@dataclass(frozen=True)
class Duty:
    kind: str  # "event" or "shift"
    ref_id: int  # occurrence id or shift id
    title: str
    place: str
    starts_at: datetime
    ends_at: datetime
    status: str  # attending / leave / checked_in / none; signed_up / swap_requested
    can_check_in: bool
    tz: str  # the zone its times are shown in


def events_of_person(session: Session, person: Person) -> list[Event]:
    rows = session.execute(select(BranchMember.branch_id, BranchMember.party_group_id)
                           .where(BranchMember.person_id == person.id)).all()
    branch_ids = [r.branch_id for r in rows]
    group_ids = [r.party_group_id for r in rows if r.party_group_id is not None]
    invited = select(EventInvitee.event_id).where(EventInvitee.person_id == person.id)
    return list(session.scalars(select(Event).where(Event.cancelled == false(), or_(
        (Event.audience == Audience.branch) & Event.branch_id.in_(branch_ids),
        (Event.audience == Audience.party_group) & Event.party_group_id.in_(group_ids),
        (Event.audience == Audience.people) & Event.id.in_(invited))).order_by(Event.id)))


def my_duties(session: Session, person: Person, *, tz: ZoneInfo, now: datetime | None = None,
              days: int = 14) -> list[Duty]:
    """The person's study sessions and shifts from now (or still running) for `days`, soonest first;
    a session in its event's zone, a shift in `tz` (the community's)."""
    now = now_or_utc(now)
    end = now + timedelta(days=days)
    out: list[Duty] = []
    for event in events_of_person(session, person):
        back = timedelta(minutes=max(event.duration_minutes, event.checkin_after_minutes))
        for occ in occurrences(session, event, now - back, end, now=now):
            row = attendance_of(session, occ, person)
            opens, closes = checkin_window(occ)
            out.append(Duty("event", occ.id, event.title, event.place, occ.starts_at,
                            occ.starts_at + timedelta(minutes=event.duration_minutes),
                            row.status.value if row else "none",
                            opens <= now <= closes and (row is None or row.status is not A.checked_in),
                            event.tz))
    for signup, shift in session.execute(
            select(ShiftSignup, Shift).join(Shift, Shift.id == ShiftSignup.shift_id)
            .where(ShiftSignup.person_id == person.id, ShiftSignup.status == SignupStatus.active,
                   Shift.cancelled == false(), Shift.ends_at > now, Shift.starts_at < end)).all():
        out.append(Duty("shift", shift.id, shift.title, shift.place, shift.starts_at, shift.ends_at,
                        "swap_requested" if signup.swap_requested else "signed_up", False, tz.key))
    return sorted(out, key=lambda d: (d.starts_at, d.kind, d.ref_id))


def next_invitation(session: Session, person: Person, *, tz: ZoneInfo, now: datetime | None = None) -> Duty | None:
    """The soonest study session `person` is invited to that has not started: what a member
    who writes "我参加" or "我请假" without naming one is answering."""
    now = now_or_utc(now)
    return next((d for d in my_duties(session, person, tz=tz, now=now)
                 if d.kind == "event" and d.starts_at > now and d.status != A.checked_in.value), None)


def duties_payload(session: Session, person: Person, *, tz: ZoneInfo, now: datetime | None = None,
                   days: int = 14) -> dict[str, Any]:
    """"My duties" as a message: one numbered line per duty, buttons for what can be done now."""
    now = now_or_utc(now)
    duties = my_duties(session, person, tz=tz, now=now, days=days)
    if not duties:
        return {"text": t("duty.mine_none", days=days)}
    lines, buttons = [t("duty.mine_header", days=days)], []
    for n, d in enumerate(duties, 1):
        tz = zone_named(d.tz)
        lines.append(t(f"duty.mine_{d.kind}", n=n, when=fmt_at(d.starts_at, tz), end=hour_minute(d.ends_at, tz),
                       title=d.title, place=d.place, status=t(f"duty.status.{d.status}")))
        def button(label: str, data: str, n: int = n) -> dict[str, str]:
            return {"text": t("duty.button_n", n=n, label=t(f"duty.button_{label}")), "callback_data": data}

        row: list[dict[str, str]] = []
        if d.kind == "event" and d.can_check_in:
            row.append(button("checkin", callbacks.event_answer("c", d.ref_id)))
        elif d.kind == "event" and d.status == "none" and d.starts_at > now:
            row += [button("attend", callbacks.event_answer("y", d.ref_id)), button("leave", callbacks.event_answer("n", d.ref_id))]
        elif d.kind == "shift" and d.status == "signed_up" and d.starts_at > now:
            row.append(button("swap", callbacks.shift_action("w", d.ref_id)))
        if row:
            buttons.append(row)
    payload: dict[str, Any] = {"text": "\n".join(lines)}
    if buttons:
        payload["buttons"] = buttons
    return payload
