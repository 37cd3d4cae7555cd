"""Branch duties: study sessions (三会一课, 主题党日, study) and volunteer shifts.

Every function works in the caller's transaction and never commits; refusals raise
core.tickets.service.NotAllowed with a Chinese reason fit to show the person. Every message is
an outbox row with a dedupe key naming what it announces, so a retried call (or a
reminder job run twice) never queues it twice.

Recurrence: `Event.rrule` is an RFC 5545 RRULE (dateutil.rrule) read as wall-clock time
in `Event.tz`, with DTSTART = `Event.starts_at`; e.g. "every month on the 15th at 09:00"
is starts_at = the first 15th at 09:00 local and rrule "FREQ=MONTHLY;BYMONTHDAY=15".
As RFC 5545 says, BYMONTHDAY=31 skips the months without a 31st; "the last day of
the month" is BYMONTHDAY=-1. Quarterly is FREQ=MONTHLY;INTERVAL=3 (from the first
month) or FREQ=YEARLY;BYMONTH=1,4,7,10. DTSTART itself counts only if the rule matches
it (dateutil's reading). Occurrences are materialised HORIZON ahead (and on demand),
so attendance attaches to a concrete EventOccurrence.

Button callback data (each well under Telegram's 64 bytes), see `parse_callback`:
"ev:y:<occurrence>" 参加, "ev:n:<occurrence>" 请假 (the bot then asks the reason),
"ev:c:<occurrence>" 签到, "ev:m:<event>" mute reminders, "sh:s:<shift>" sign up,
"sh:x:<shift>" cancel the sign-up, "sh:w:<shift>" ask for a swap, "sh:t:<signup>" take it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import false, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, allowed, scope_of_branch, scope_of_community
from core.config import get_settings
from core.messages import t
from core.messaging.outbox import enqueue, enqueue_many
from core.models import (
    Attendance,
    AttendanceStatus,
    Audience,
    Branch,
    BranchMember,
    Building,
    Event,
    EventInvitee,
    EventKind,
    EventOccurrence,
    Grid,
    OutboxMessage,
    PartyGroup,
    Person,
    ReminderMute,
    Role,
    RoleGrant,
    Shift,
    ShiftSignup,
    SignupStatus,
    utcnow,
)
from core.models.duties import DEFAULT_REMINDER_OFFSETS

A = AttendanceStatus
HORIZON = timedelta(weeks=8)  # how far ahead recurring events are materialised
SHORT_NOTICE = timedelta(hours=24)  # a shift still short this long before its start tells the secretary
EARLY_TOLERANCE = timedelta(minutes=1)  # a reminder job running earlier than this is stale (event moved)
# Suggested recurrence per kind (BRIEF glossary); day and time come from starts_at.
KIND_RULES: dict[EventKind, str | None] = {
    EventKind.general_meeting: "FREQ=MONTHLY;INTERVAL=3",
    EventKind.committee: "FREQ=MONTHLY",
    EventKind.group_meeting: "FREQ=MONTHLY",
    EventKind.lecture: "FREQ=MONTHLY;INTERVAL=3",
    EventKind.theme_day: "FREQ=MONTHLY",
    EventKind.study: None,
}
_ALLOWED_FREQ = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY"}
_EVENT_FIELDS = {"title", "place", "agenda", "starts_at", "duration_minutes", "rrule", "tz", "mandatory",
                 "reminder_offsets", "checkin_before", "checkin_after", "audience", "party_group_id",
                 "person_ids"}
_SCHEDULE_FIELDS = {"starts_at", "rrule", "tz", "duration_minutes"}


class Callback(NamedTuple):
    scope: str  # "ev" or "sh"
    action: str  # y n c m / s x w t
    id: int


def parse_callback(data: str) -> Callback | None:
    """The duty button behind `data`, or None when it is not one of ours."""
    match = re.fullmatch(r"(ev):([ynmc]):(\d{1,18})|(sh):([sxwt]):(\d{1,18})", data or "")
    if match is None:
        return None
    scope, action, ident = (match.group(1, 2, 3) if match.group(1) else match.group(4, 5, 6))
    return Callback(scope, action, int(ident))


# -- small helpers ---------------------------------------------------------------

def _now(now: datetime | None) -> datetime:
    return now or utcnow()


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else get_settings().tz
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise NotAllowed(t("duty.deny.bad_tz", tz=name)) from exc


def fmt_at(at: datetime, tz: ZoneInfo) -> str:
    """11月15日（周六）09:00 in `tz`."""
    local = at.astimezone(tz)
    return t("duty.at", month=local.month, day=local.day, weekday=t("duty.weekdays")[local.weekday()],
             time=local.strftime("%H:%M"))


def _hm(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def span(minutes: int) -> str:
    """How long until: 2880 → 2天, 1440 → 24小时, 60 → 1小时, 90 → 90分钟, 200 → 3小时 (rounded)."""
    if minutes >= 2880 and minutes % 1440 == 0:
        return t("duty.span_days", n=minutes // 1440)
    if minutes >= 60 and minutes % 60 == 0 or minutes >= 120:
        return t("duty.span_hours", n=round(minutes / 60))
    return t("duty.span_minutes", n=minutes)


def _names(people: Iterable[Person]) -> str:
    return "、".join(p.display_name for p in people) or t("duty.none")


def _insert_ignore(session: Session, model: type[Any], rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: concurrent writers of the same unique row keep one."""
    if not rows:
        return
    session.flush()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(model).values(rows).on_conflict_do_nothing(index_elements=keys))


def _tell(session: Session, person: Person | None, key: str, payload: dict[str, Any],
          kind: str = "notice") -> bool:
    if person is None or person.telegram_id is None:
        return False
    return enqueue(session, dedupe_key=key, kind=kind, chat_id=person.telegram_id, payload=payload)


def _stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y%m%d%H%M")


# -- permissions -------------------------------------------------------------------

def _require_person(person: Person | None) -> Person:
    if person is None:
        raise NotAllowed(t("duty.deny.unknown_person"))
    return person


def _branch(session: Session, branch_id: int) -> Branch:
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotAllowed(t("duty.deny.branch_not_found"))
    return branch


def may_manage_branch(session: Session, person: Person | None, branch: Branch,
                      action: str = "event.manage") -> bool:
    """The branch's secretary and the admins of its community (PERMISSIONS[action]) schedule
    and see its duties."""
    return person is not None and allowed(session, person, action, scope_of_branch(session, branch))


def _require_manager(session: Session, person: Person | None, branch: Branch,
                     action: str = "event.manage") -> Person:
    person = _require_person(person)
    if not may_manage_branch(session, person, branch, action):
        raise NotAllowed(t("duty.deny.not_manager"))
    return person


def _community_branches(session: Session, community_id: int) -> list[Branch]:
    return list(session.scalars(select(Branch).join(Grid, Grid.id == Branch.grid_id)
                                .where(Grid.community_id == community_id).order_by(Branch.id)))


def may_manage_shift(session: Session, person: Person | None, shift: Shift) -> bool:
    """shift.manage: a branch shift at its branch; a community shift at the community (its
    admins) or at any branch of it (its secretaries)."""
    if person is None:
        return False
    if shift.branch_id is not None:
        return allowed(session, person, "shift.manage", scope_of_branch(session, _branch(session, shift.branch_id)))
    return allowed(session, person, "shift.manage", scope_of_community(shift.community_id)) or any(
        allowed(session, person, "shift.manage", scope_of_branch(session, b))
        for b in _community_branches(session, shift.community_id))


# -- recurrence --------------------------------------------------------------------

def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",")]


def _plausible(body: str) -> bool:
    """Reject what dateutil accepts but can never match (it would search up to year 9999 for
    BYMONTHDAY=40 or BYMONTH=2;BYMONTHDAY=30): only the parts a branch calendar needs, in range."""
    try:
        parts = dict(part.split("=", 1) for part in body.split(";"))
        if set(parts) - _RULE_PARTS or parts.get("FREQ") not in _ALLOWED_FREQ:
            return False
        for key, (low, high) in _RULE_RANGES.items():
            if key in parts and not all(low <= (abs(v) if key in _SIGNED else v) <= high
                                        for v in _ints(parts[key])):
                return False
        if "BYMONTHDAY" in parts:
            days = _ints(parts["BYMONTHDAY"])
            months = _ints(parts["BYMONTH"]) if "BYMONTH" in parts else list(range(1, 13))
            longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
            return any(v < 0 and -v <= longest.get(m, 31) or 0 < v <= longest.get(m, 31)
                       for m in months for v in days)
    except ValueError:
        return False
    return True


_RULE_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYSETPOS",
               "BYHOUR", "BYMINUTE", "WKST"}
_RULE_RANGES = {"INTERVAL": (1, 100), "COUNT": (1, 10000), "BYMONTH": (1, 12), "BYMONTHDAY": (1, 31),
                "BYSETPOS": (1, 31), "BYHOUR": (0, 23), "BYMINUTE": (0, 59)}
_SIGNED = {"BYMONTHDAY", "BYSETPOS"}


def parse_rule(text: str, dtstart: datetime) -> rrule:
    """An RRULE (with or without the "RRULE:" prefix) from `dtstart` (aware, wall-clock in its zone)."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "\n" in body or not _plausible(body.upper()):
        raise NotAllowed(t("duty.deny.bad_rule", rule=text))
    try:
        rule = rrulestr(body, dtstart=dtstart)
    except (ValueError, TypeError) as exc:
        raise NotAllowed(t("duty.deny.bad_rule", rule=text)) from exc
    if not isinstance(rule, rrule):
        raise NotAllowed(t("duty.deny.bad_rule", rule=text))
    return rule


def rule_times(rule_text: str | None, first: datetime, tz: ZoneInfo, start: datetime,
               end: datetime) -> list[datetime]:
    """The UTC start times in [start, end) of a series that begins at `first` (UTC) and repeats by `rule_text`."""
    if rule_text is None:
        return [first] if start <= first < end else []
    rule = parse_rule(rule_text, first.astimezone(tz))
    times = rule.between(start.astimezone(tz), end.astimezone(tz), inc=True)
    return [at.astimezone(timezone.utc) for at in times if start <= at < end]


def next_time(event: Event, after: datetime) -> datetime | None:
    """The first start of `event` at or after `after`."""
    if event.rrule is None:
        return event.starts_at if event.starts_at >= after else None
    tz = _zone(event.tz)
    found = parse_rule(event.rrule, event.starts_at.astimezone(tz)).after(after.astimezone(tz), inc=True)
    return found.astimezone(timezone.utc) if found else None


def occurrence_times(event: Event, start: datetime, end: datetime) -> list[datetime]:
    return rule_times(event.rrule, event.starts_at, _zone(event.tz), start, end)


def materialise(session: Session, event: Event, start: datetime, end: datetime) -> None:
    """Make sure every occurrence of `event` in [start, end) has its row (idempotent, race-safe)."""
    if event.cancelled:
        return
    times = occurrence_times(event, start, end)
    if not times:
        return
    have = set(session.scalars(select(EventOccurrence.starts_at).where(
        EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= min(times),
        EventOccurrence.starts_at <= max(times))))
    rows = [dict(event_id=event.id, starts_at=at, cancelled=False, reminders_dirty=True)
            for at in times if at not in have]
    _insert_ignore(session, EventOccurrence, rows, ["event_id", "starts_at"])


def materialise_all(session: Session, now: datetime | None = None, horizon: timedelta = HORIZON) -> None:
    """Materialise every live event for the next `horizon` (the scheduler's sync does this)."""
    now = _now(now)
    for event in session.scalars(select(Event).where(Event.cancelled == false()).order_by(Event.id)):
        materialise(session, event, now, now + horizon)


def occurrences(session: Session, event: Event, start: datetime, end: datetime, *,
                include_cancelled: bool = False, now: datetime | None = None) -> list[EventOccurrence]:
    """The occurrences of `event` starting in [start, end); those from `now` on are materialised on
    demand, earlier ones exist only if they were materialised while still ahead (never after the fact)."""
    materialise(session, event, max(start, _now(now)), end)
    query = select(EventOccurrence).where(EventOccurrence.event_id == event.id,
                                          EventOccurrence.starts_at >= start, EventOccurrence.starts_at < end)
    if not include_cancelled:
        query = query.where(EventOccurrence.cancelled == false())
    return list(session.scalars(query.order_by(EventOccurrence.starts_at)))


# -- events ------------------------------------------------------------------------

def _event(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotAllowed(t("duty.deny.event_not_found"))
    return event


def _occurrence(session: Session, occurrence_id: int) -> EventOccurrence:
    occ = session.get(EventOccurrence, occurrence_id)
    if occ is None:
        raise NotAllowed(t("duty.deny.event_not_found"))
    return occ


def _check_offsets(offsets: Sequence[int]) -> list[int]:
    if any(not isinstance(o, int) or isinstance(o, bool) or o <= 0 for o in offsets):
        raise NotAllowed(t("duty.deny.bad_offsets"))
    return sorted(set(offsets), reverse=True)


def _set_audience(session: Session, event: Event, audience: Audience, party_group_id: int | None,
                  person_ids: Sequence[int]) -> None:
    event.audience = audience
    event.party_group_id = None
    if audience is Audience.party_group:
        group = session.get(PartyGroup, party_group_id) if party_group_id is not None else None
        if group is None or group.branch_id != event.branch_id:
            raise NotAllowed(t("duty.deny.no_group"))
        event.party_group_id = group.id
    wanted = list(dict.fromkeys(person_ids)) if audience is Audience.people else []
    if audience is Audience.people and (not wanted or any(session.get(Person, i) is None for i in wanted)):
        raise NotAllowed(t("duty.deny.no_people"))
    event.invitees[:] = [i for i in event.invitees if i.person_id in wanted]
    have = {i.person_id for i in event.invitees}
    event.invitees.extend(EventInvitee(person_id=i) for i in wanted if i not in have)


def _check_schedule(event: Event, now: datetime) -> None:
    if event.duration_minutes <= 0:
        raise NotAllowed(t("duty.deny.bad_duration"))
    if event.checkin_before_minutes < 0 or event.checkin_after_minutes < 0:
        raise NotAllowed(t("duty.deny.bad_offsets"))
    if event.rrule is not None:
        body = event.rrule.strip().upper()
        event.rrule = (body[6:] if body.startswith("RRULE:") else body) or None
    nxt = next_time(event, now)  # validates the rule too
    if nxt is None:
        raise NotAllowed(t("duty.deny.in_past"))


def create_event(session: Session, actor: Person | None, *, branch_id: int, kind: EventKind, title: str,
                 place: str, starts_at: datetime, agenda: str = "", duration_minutes: int = 90,
                 rrule: str | None = None, tz: str | None = None, audience: Audience = Audience.branch,
                 party_group_id: int | None = None, person_ids: Sequence[int] = (),
                 mandatory: bool | None = None, reminder_offsets: Sequence[int] | None = None,
                 checkin_before: int = 30, checkin_after: int = 60, now: datetime | None = None,
                 notify: bool = True) -> Event:
    """Schedule a branch event (one-off, or recurring by `rrule`) and tell its attendees.

    `mandatory` defaults to True for 三会一课 and 主题党日, False for study sessions.
    """
    now = _now(now)
    branch = _branch(session, branch_id)
    actor = _require_manager(session, actor, branch)
    if not title.strip() or not place.strip():
        raise NotAllowed(t("duty.deny.title_place"))
    event = Event(branch_id=branch.id, kind=kind, title=title.strip(), place=place.strip(),
                  agenda=agenda.strip(), starts_at=starts_at.replace(microsecond=0),
                  duration_minutes=duration_minutes, rrule=rrule, tz=tz or get_settings().timezone,
                  mandatory=kind is not EventKind.study if mandatory is None else mandatory,
                  reminder_offsets_minutes=_check_offsets(
                      DEFAULT_REMINDER_OFFSETS if reminder_offsets is None else reminder_offsets),
                  checkin_before_minutes=checkin_before, checkin_after_minutes=checkin_after,
                  cancelled=False, revision=0, created_by_id=actor.id, invitees=[])
    _zone(event.tz)
    _check_schedule(event, now)
    session.add(event)
    _set_audience(session, event, audience, party_group_id, person_ids)
    session.flush()
    first = _materialise_ahead(session, event, now)
    if notify:
        _announce(session, event, first, "new", f"event-new:{event.id}")
    return event


def _materialise_ahead(session: Session, event: Event, now: datetime) -> EventOccurrence | None:
    """Materialise the next HORIZON, and the next occurrence even when it lies further; return that one."""
    nxt = next_time(event, now)
    materialise(session, event, now, max(now + HORIZON, (nxt or now) + timedelta(seconds=1)))
    if nxt is None:
        return None
    return session.scalar(select(EventOccurrence).where(EventOccurrence.event_id == event.id,
                                                        EventOccurrence.starts_at == nxt))


def _event_text(event: Event, at: datetime | None) -> dict[str, Any]:
    tz = _zone(event.tz)
    return dict(title=event.title, kind=t(f"duty.kind.{event.kind.value}"), place=event.place,
                when=fmt_at(at, tz) if at else t("duty.none"),
                repeat=t("duty.repeats") if event.rrule else "",
                agenda=t("duty.agenda_line", agenda=event.agenda) if event.agenda else "")


def _answer_buttons(occ: EventOccurrence) -> list[list[dict[str, str]]]:
    return [[{"text": t("duty.button_attend"), "callback_data": f"ev:y:{occ.id}"},
             {"text": t("duty.button_leave"), "callback_data": f"ev:n:{occ.id}"}]]


def _announce(session: Session, event: Event, occ: EventOccurrence | None, what: str, key: str,
              people: Iterable[Person] | None = None) -> None:
    payload: dict[str, Any] = {"text": t(f"duty.event_{what}", **_event_text(event, occ.starts_at if occ else None))}
    if occ is not None and what in ("new", "changed"):
        payload["buttons"] = _answer_buttons(occ)
    for person in (people if people is not None else event_attendees(session, event)):
        _tell(session, person, f"{key}:{person.id}", payload)


def update_event(session: Session, event_id: int, actor: Person | None, *, now: datetime | None = None,
                 notify: bool = True, **changes: Any) -> Event:
    """Change an event's details, schedule or audience; future occurrences follow, attendees are told.

    Keys: title, place, agenda, starts_at, duration_minutes, rrule, tz, mandatory, reminder_offsets,
    checkin_before, checkin_after, audience, party_group_id, person_ids. A one-off event that
    moves keeps its occurrence (and its answers); a recurring one cancels the future
    occurrences its new rule no longer has.
    """
    now = _now(now)
    unknown = set(changes) - _EVENT_FIELDS
    if unknown:
        raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
    event = _event(session, event_id)
    _require_manager(session, actor, _branch(session, event.branch_id))
    if event.cancelled:
        raise NotAllowed(t("duty.deny.cancelled"))
    before = set(p.id for p in event_attendees(session, event))
    simple = {"title": "title", "place": "place", "agenda": "agenda", "duration_minutes": "duration_minutes",
              "rrule": "rrule", "tz": "tz", "mandatory": "mandatory", "checkin_before": "checkin_before_minutes",
              "checkin_after": "checkin_after_minutes"}
    for key, attr in simple.items():
        if key in changes:
            value = changes[key].strip() if isinstance(changes[key], str) and key != "rrule" else changes[key]
            setattr(event, attr, value)
    if "starts_at" in changes:
        event.starts_at = changes["starts_at"].replace(microsecond=0)
    if "reminder_offsets" in changes:
        event.reminder_offsets_minutes = _check_offsets(changes["reminder_offsets"])
    if {"audience", "party_group_id", "person_ids"} & set(changes):
        _set_audience(session, event, Audience(changes.get("audience", event.audience)),
                      changes.get("party_group_id", event.party_group_id),
                      changes.get("person_ids", [i.person_id for i in event.invitees]))
    if not event.title or not event.place:
        raise NotAllowed(t("duty.deny.title_place"))
    _zone(event.tz)
    _check_schedule(event, now)
    event.revision += 1
    session.flush()
    future = list(session.scalars(select(EventOccurrence).where(
        EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= now,
        EventOccurrence.cancelled == false()).order_by(EventOccurrence.starts_at)))
    if _SCHEDULE_FIELDS & set(changes):
        wanted = set(occurrence_times(event, now, now + HORIZON))
        if event.rrule is None:
            wanted = {event.starts_at}
            if len(future) == 1 and future[0].starts_at != event.starts_at:
                future[0].starts_at = event.starts_at  # moved: keeps its answers
        for occ in future:
            if occ.starts_at not in wanted:
                occ.cancelled = True
    session.execute(update(EventOccurrence)
                    .where(EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= now)
                    .values(reminders_dirty=True))
    session.flush()
    first = _materialise_ahead(session, event, now)
    if notify:
        after = event_attendees(session, event)
        gone = [p for i in before - {p.id for p in after} if (p := session.get(Person, i)) is not None]
        _announce(session, event, first, "changed", f"event-changed:{event.id}:{event.revision}", after)
        _announce(session, event, first, "uninvited", f"event-uninvited:{event.id}:{event.revision}", gone)
    return event


def cancel_event(session: Session, event_id: int, actor: Person | None, *,
                 now: datetime | None = None) -> Event:
    """Cancel an event (the whole series) and tell its attendees; past occurrences stay for the record."""
    now = _now(now)
    event = _event(session, event_id)
    _require_manager(session, actor, _branch(session, event.branch_id))
    if event.cancelled:
        return event
    nxt = session.scalar(select(EventOccurrence).where(
        EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= now,
        EventOccurrence.cancelled == false()).order_by(EventOccurrence.starts_at).limit(1))
    event.cancelled = True
    session.execute(update(EventOccurrence)
                    .where(EventOccurrence.event_id == event.id, EventOccurrence.starts_at >= now)
                    .values(cancelled=True, reminders_dirty=True))
    session.flush()
    payload = {"text": t("duty.event_cancelled", **_event_text(event, nxt.starts_at if nxt else event.starts_at))}
    for person in event_attendees(session, event):
        _tell(session, person, f"event-cancelled:{event.id}:{person.id}", payload)
    return event


def cancel_occurrence(session: Session, occurrence_id: int, actor: Person | None, *,
                      now: datetime | None = None) -> EventOccurrence:
    """Call off one meeting of a series (or the one of a one-off event) and tell its attendees."""
    now = _now(now)
    occ = _occurrence(session, occurrence_id)
    event = occ.event
    _require_manager(session, actor, _branch(session, event.branch_id))
    if occ.starts_at <= now:
        raise NotAllowed(t("duty.deny.started"))
    if not occ.cancelled:
        occ.cancelled, occ.reminders_dirty = True, True
        payload = {"text": t("duty.occurrence_cancelled", title=event.title,
                             when=fmt_at(occ.starts_at, _zone(event.tz)))}
        for person in attendees(session, occ):
            _tell(session, person, f"occurrence-cancelled:{occ.id}:{person.id}", payload)
    return occ


def event_attendees(session: Session, event: Event) -> list[Person]:
    """Who is expected: the branch, one party group, or the named people (current membership)."""
    if event.audience is Audience.people:
        query = select(Person).join(EventInvitee, EventInvitee.person_id == Person.id) \
            .where(EventInvitee.event_id == event.id)
    else:
        query = select(Person).join(BranchMember, BranchMember.person_id == Person.id) \
            .where(BranchMember.branch_id == event.branch_id)
        if event.audience is Audience.party_group:
            query = query.where(BranchMember.party_group_id == event.party_group_id)
    return list(session.scalars(query.order_by(Person.id)))


def attendees(session: Session, occurrence: EventOccurrence) -> list[Person]:
    return event_attendees(session, occurrence.event)


def _attendance(session: Session, occ: EventOccurrence, person: Person) -> Attendance | None:
    return session.scalar(select(Attendance).where(Attendance.occurrence_id == occ.id,
                                                   Attendance.person_id == person.id))


def _answerable(session: Session, occurrence_id: int, person: Person | None) -> tuple[EventOccurrence, Person]:
    person = _require_person(person)
    occ = _occurrence(session, occurrence_id)
    if occ.cancelled or occ.event.cancelled:
        raise NotAllowed(t("duty.deny.cancelled"))
    if person.id not in {p.id for p in attendees(session, occ)}:
        raise NotAllowed(t("duty.deny.not_invited"))
    return occ, person


def _upsert_attendance(session: Session, occ: EventOccurrence, person: Person, status: AttendanceStatus,
                       now: datetime) -> Attendance:
    row = _attendance(session, occ, person)
    if row is None:  # a double click may race us: keep one row
        _insert_ignore(session, Attendance, [dict(occurrence_id=occ.id, person_id=person.id, status=status,
                                                  at=now)], ["occurrence_id", "person_id"])
        row = _attendance(session, occ, person)
        assert row is not None
    row.status, row.at = status, now
    return row


def rsvp(session: Session, occurrence_id: int, person: Person | None, attending: bool,
         reason: str | None = None, *, now: datetime | None = None) -> Attendance:
    """参加 (attending=True) or 请假 with a reason, until the occurrence starts; may be changed until then."""
    now = _now(now)
    occ, person = _answerable(session, occurrence_id, person)
    if now >= occ.starts_at:
        raise NotAllowed(t("duty.deny.started"))
    reason = (reason or "").strip()
    if not attending and not reason:
        raise NotAllowed(t("duty.deny.reason_needed"))
    row = _attendance(session, occ, person)
    if row is not None and row.status is A.checked_in:
        raise NotAllowed(t("duty.deny.already_checked_in"))
    row = _upsert_attendance(session, occ, person, A.attending if attending else A.leave, now)
    row.reason = None if attending else reason[:500]
    session.flush()
    return row


def check_rsvp(session: Session, occurrence_id: int, person: Person | None, *,
               now: datetime | None = None) -> EventOccurrence:
    """What `rsvp` checks before it needs the answer (invited, not cancelled, not started, not
    checked in): the bot asks for a 请假 reason only when these pass."""
    now = _now(now)
    occ, person = _answerable(session, occurrence_id, person)
    if now >= occ.starts_at:
        raise NotAllowed(t("duty.deny.started"))
    row = _attendance(session, occ, person)
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
    now = _now(now)
    occ, person = _answerable(session, occurrence_id, person)
    opens, closes = checkin_window(occ)
    if not opens <= now <= closes:
        tz = _zone(occ.event.tz)
        raise NotAllowed(t("duty.deny.checkin_window", opens=fmt_at(opens, tz), closes=_hm(closes, tz)))
    row = _attendance(session, occ, person)
    if row is not None and row.status is A.checked_in:
        return row
    row = _upsert_attendance(session, occ, person, A.checked_in, now)
    row.checked_in_at = now
    session.flush()
    return row


def mute_reminders(session: Session, event_id: int, person: Person | None, muted: bool = True) -> None:
    """Stop (or restart) reminders of a non-mandatory event for one person."""
    person = _require_person(person)
    event = _event(session, event_id)
    if muted and event.mandatory:
        raise NotAllowed(t("duty.deny.mandatory_mute"))
    row = session.scalar(select(ReminderMute).where(ReminderMute.event_id == event.id,
                                                    ReminderMute.person_id == person.id))
    if muted and row is None:
        _insert_ignore(session, ReminderMute, [dict(event_id=event.id, person_id=person.id)],
                       ["person_id", "event_id"])
    elif not muted and row is not None:
        session.delete(row)
    session.flush()


def reminder_key(occ: EventOccurrence, person_id: int, offset_minutes: int) -> str:
    """The outbox dedupe key of one reminder: occurrence, its start, person and offset."""
    return f"remind:{occ.id}:{_stamp(occ.starts_at)}:{person_id}:{offset_minutes}"




def _reminder_messages(session: Session, occ: EventOccurrence | None, offset_minutes: int, now: datetime,
                       late_after: timedelta) -> list[dict[str, Any]]:
    """The outbox rows of one occurrence's `offset_minutes` reminder (see `send_reminders`)."""
    if occ is None or occ.cancelled or occ.event.cancelled or now >= occ.starts_at:
        return []
    event = occ.event
    if offset_minutes not in event.reminder_offsets_minutes:
        return []
    due = occ.starts_at - timedelta(minutes=offset_minutes)
    if now < due - EARLY_TOLERANCE:
        return []
    muted = set() if event.mandatory else set(session.scalars(
        select(ReminderMute.person_id).where(ReminderMute.event_id == event.id)))
    answers = {a.person_id: a.status for a in session.scalars(
        select(Attendance).where(Attendance.occurrence_id == occ.id))}
    values = _event_text(event, occ.starts_at)
    values["lead"] = span(max(1, round((occ.starts_at - now).total_seconds() / 60)))
    text = t("duty.remind", **values)
    if now - due > late_after:
        text = f"{text}\n{t('duty.remind_late')}"
    messages = []
    for person in attendees(session, occ):
        status = answers.get(person.id)
        if person.id in muted or status is A.leave or person.telegram_id is None:
            continue
        buttons = _answer_buttons(occ) if status is None else []
        if not event.mandatory:
            buttons.append([{"text": t("duty.button_mute"), "callback_data": f"ev:m:{event.id}"}])
        payload: dict[str, Any] = {"text": text}
        if buttons:
            payload["buttons"] = buttons
        messages.append({"dedupe_key": reminder_key(occ, person.id, offset_minutes),
                         "chat_id": person.telegram_id, "payload": payload})
    return messages


def send_reminders(session: Session, occurrence_id: int, offset_minutes: int, *,
                   now: datetime | None = None, late_after: timedelta = timedelta(minutes=2)) -> int:
    """Queue the `offset_minutes` reminder of one occurrence to each attendee; how many were queued.

    Nothing for a cancelled or started occurrence, an offset no longer configured, or a
    stale job firing well before its (moved) time. A reminder later than `late_after` is
    marked 迟到的提醒. The dedupe key names occurrence, start, person and offset, so a
    job that runs twice queues each reminder once.
    """
    messages = _reminder_messages(session, session.get(EventOccurrence, occurrence_id), offset_minutes,
                                  _now(now), late_after)
    # One multi-row INSERT per 500: a branch-wide reminder to 1,000 members takes tens of ms, not seconds.
    return enqueue_many(session, messages)


@dataclass(frozen=True)
class DueReminder:
    """One (occurrence, offset) reminder whose time has come."""

    occurrence_id: int
    offset_minutes: int
    due_at: datetime


def unqueued_reminders(session: Session, now: datetime | None = None) -> list[DueReminder]:
    """Reminders that are due, not yet useless (the occurrence has not started) and have no
    outbox row although they have someone to go to; oldest first.

    A reminder's job normally queues it at its time. This finds the ones a job did not: the
    job was lost (a kill while it ran: APScheduler removes a one-off job before running it)
    or it raised. A reminder whose time had already passed when its event was created or last
    changed is not due: the scheduler never writes a job for it either (`schedule_reminders`).
    """
    now = _now(now)
    live = list(session.scalars(select(Event).where(Event.cancelled == false())))
    longest = max((max(e.reminder_offsets_minutes, default=0) for e in live), default=0)
    if not longest:
        return []
    occurrences = session.scalars(
        select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id)
        .where(Event.cancelled == false(), EventOccurrence.cancelled == false(),
               EventOccurrence.starts_at > now,
               EventOccurrence.starts_at <= now + timedelta(minutes=longest))
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    due: list[tuple[DueReminder, EventOccurrence]] = []
    for occ in occurrences:
        for offset in occ.event.reminder_offsets_minutes:
            at = occ.starts_at - timedelta(minutes=offset)
            if occ.event.updated_at < at <= now:
                due.append((DueReminder(occ.id, offset, at), occ))
    missing = []
    for reminder, occ in due:
        keys = [m["dedupe_key"] for m in
                _reminder_messages(session, occ, reminder.offset_minutes, now, timedelta.max)]
        # Exact keys: the unique index answers. Any one of them queued means the job ran (it
        # queues them all in one transaction; someone who joined since is not reminded).
        if keys and session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key.in_(keys))
                                   .limit(1)) is None:
            missing.append(reminder)
    return sorted(missing, key=lambda r: (r.due_at, r.occurrence_id, r.offset_minutes))


# -- what a member sees --------------------------------------------------------------

@dataclass(frozen=True)
class Duty:
    kind: str  # "event" or "shift"
    ref_id: int  # occurrence id or shift id
    title: str
    place: str
    starts_at: datetime
    ends_at: datetime
    status: str  # attending / leave / checked_in / none; signed_up / swap_requested
    can_check_in: bool = False
    tz: str = "Asia/Shanghai"


def _events_of(session: Session, person: Person) -> list[Event]:
    rows = session.execute(select(BranchMember.branch_id, BranchMember.party_group_id)
                           .where(BranchMember.person_id == person.id)).all()
    branch_ids = [r.branch_id for r in rows]
    group_ids = [r.party_group_id for r in rows if r.party_group_id is not None]
    invited = select(EventInvitee.event_id).where(EventInvitee.person_id == person.id)
    return list(session.scalars(select(Event).where(Event.cancelled == false(), or_(
        (Event.audience == Audience.branch) & Event.branch_id.in_(branch_ids),
        (Event.audience == Audience.party_group) & Event.party_group_id.in_(group_ids),
        (Event.audience == Audience.people) & Event.id.in_(invited))).order_by(Event.id)))


def my_duties(session: Session, person: Person, *, now: datetime | None = None, days: int = 14) -> list[Duty]:
    """The person's study sessions and shifts from now (or still running) for `days`, soonest first."""
    now = _now(now)
    end = now + timedelta(days=days)
    out: list[Duty] = []
    for event in _events_of(session, person):
        back = timedelta(minutes=max(event.duration_minutes, event.checkin_after_minutes))
        for occ in occurrences(session, event, now - back, end, now=now):
            row = _attendance(session, occ, person)
            opens, closes = checkin_window(occ)
            out.append(Duty("event", occ.id, event.title, event.place, occ.starts_at,
                            occ.starts_at + timedelta(minutes=event.duration_minutes),
                            row.status.value if row else "none",
                            opens <= now <= closes and (row is None or row.status is not A.checked_in),
                            event.tz))
    tz = get_settings().timezone
    for signup, shift in session.execute(
            select(ShiftSignup, Shift).join(Shift, Shift.id == ShiftSignup.shift_id)
            .where(ShiftSignup.person_id == person.id, ShiftSignup.status == SignupStatus.active,
                   Shift.cancelled == false(), Shift.ends_at > now, Shift.starts_at < end)).all():
        out.append(Duty("shift", shift.id, shift.title, shift.place, shift.starts_at, shift.ends_at,
                        "swap_requested" if signup.swap_requested else "signed_up", tz=tz))
    return sorted(out, key=lambda d: (d.starts_at, d.kind, d.ref_id))


def next_invitation(session: Session, person: Person, *, now: datetime | None = None) -> Duty | None:
    """The soonest study session `person` is invited to that has not started: what a member
    who writes "我参加" or "我请假" without naming one is answering."""
    now = _now(now)
    return next((d for d in my_duties(session, person, now=now)
                 if d.kind == "event" and d.starts_at > now and d.status != A.checked_in.value), None)


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


def duties_payload(session: Session, person: Person, *, now: datetime | None = None,
                   days: int = 14) -> dict[str, Any]:
    """"My duties" as a message: one numbered line per duty, buttons for what can be done now."""
    now = _now(now)
    duties = my_duties(session, person, now=now, days=days)
    if not duties:
        return {"text": t("duty.mine_none", days=days)}
    lines, buttons = [t("duty.mine_header", days=days)], []
    for n, d in enumerate(duties, 1):
        tz = _zone(d.tz)
        lines.append(t(f"duty.mine_{d.kind}", n=n, when=fmt_at(d.starts_at, tz), end=_hm(d.ends_at, tz),
                       title=d.title, place=d.place, status=t(f"duty.status.{d.status}")))
        def button(label: str, data: str, n: int = n) -> dict[str, str]:
            return {"text": t("duty.button_n", n=n, label=t(f"duty.button_{label}")), "callback_data": data}

        row: list[dict[str, str]] = []
        if d.kind == "event" and d.can_check_in:
            row.append(button("checkin", f"ev:c:{d.ref_id}"))
        elif d.kind == "event" and d.status == "none" and d.starts_at > now:
            row += [button("attend", f"ev:y:{d.ref_id}"), button("leave", f"ev:n:{d.ref_id}")]
        elif d.kind == "shift" and d.status == "signed_up" and d.starts_at > now:
            row.append(button("swap", f"sh:w:{d.ref_id}"))
        if row:
            buttons.append(row)
    payload: dict[str, Any] = {"text": "\n".join(lines)}
    if buttons:
        payload["buttons"] = buttons
    return payload


# -- what the secretary sees ----------------------------------------------------------

@dataclass(frozen=True)
class EventReport:
    occurrence: EventOccurrence
    coming: list[Person]  # answered 参加 or checked in
    leave: list[tuple[Person, str]]  # with the reason
    no_answer: list[Person]
    checked_in: list[Person]

    @property
    def expected(self) -> int:
        return len(self.coming) + len(self.leave) + len(self.no_answer)


def _report(session: Session, occ: EventOccurrence) -> EventReport:
    rows = {a.person_id: a for a in session.scalars(select(Attendance).where(Attendance.occurrence_id == occ.id))}
    people = {p.id: p for p in attendees(session, occ)}
    for person_id in rows.keys() - people.keys():  # answered, then left the audience
        extra = session.get(Person, person_id)
        if extra is not None:
            people[person_id] = extra
    ordered = [people[i] for i in sorted(people)]
    status = {i: rows[i].status for i in rows}
    return EventReport(
        occ,
        coming=[p for p in ordered if status.get(p.id) in (A.attending, A.checked_in)],
        leave=[(p, rows[p.id].reason or "") for p in ordered if status.get(p.id) is A.leave],
        no_answer=[p for p in ordered if p.id not in status],
        checked_in=[p for p in ordered if status.get(p.id) is A.checked_in])


def event_report(session: Session, occurrence_id: int, actor: Person | None) -> EventReport:
    """Who comes, who asked for leave (and why), who did not answer, who checked in."""
    occ = _occurrence(session, occurrence_id)
    _require_manager(session, actor, _branch(session, occ.event.branch_id), "event.report")
    return _report(session, occ)


def event_report_text(report: EventReport) -> str:
    occ, event = report.occurrence, report.occurrence.event
    lines = [t("duty.report_header", title=event.title, when=fmt_at(occ.starts_at, _zone(event.tz)),
               expected=report.expected, coming=len(report.coming), checked_in=len(report.checked_in),
               leave=len(report.leave), no_answer=len(report.no_answer)),
             t("duty.report_coming", names=_names(report.coming)),
             t("duty.report_checked_in", names=_names(report.checked_in)),
             t("duty.report_leave", names="、".join(t("duty.report_leave_item", name=p.display_name, reason=r)
                                                   for p, r in report.leave) or t("duty.none")),
             t("duty.report_no_answer", names=_names(report.no_answer))]
    return "\n".join(lines)


@dataclass
class Tally:
    expected: int = 0
    attended: int = 0  # checked in
    leave: int = 0
    absent: int = 0  # neither checked in nor on leave


@dataclass
class MonthlySummary:
    branch: Branch
    year: int
    month: int
    occurrences: list[tuple[EventOccurrence, Tally]] = field(default_factory=list)
    people: list[tuple[Person, Tally]] = field(default_factory=list)
    total: Tally = field(default_factory=Tally)

    @property
    def rate(self) -> float | None:
        return self.total.attended / self.total.expected if self.total.expected else None


def monthly_summary(session: Session, branch_id: int, year: int, month: int, actor: Person | None, *,
                    now: datetime | None = None, tz: ZoneInfo | None = None) -> MonthlySummary:
    """Attendance of the branch's occurrences that started in the (local) month, up to now."""
    now = _now(now)
    tz = tz or get_settings().tz
    branch = _branch(session, branch_id)
    _require_manager(session, actor, branch, "event.report")
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    summary = MonthlySummary(branch, year, month)
    by_person: dict[int, tuple[Person, Tally]] = {}
    occs = session.scalars(select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id).where(
        Event.branch_id == branch.id, EventOccurrence.cancelled == false(),
        EventOccurrence.starts_at >= start, EventOccurrence.starts_at < end, EventOccurrence.starts_at <= now)
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    for occ in occs:
        report, tally = _report(session, occ), Tally()
        came = {p.id for p in report.checked_in}
        on_leave = {p.id for p, _ in report.leave}
        for person in [*report.coming, *(p for p, _ in report.leave), *report.no_answer]:
            mine = by_person.setdefault(person.id, (person, Tally()))[1]
            for tl in (tally, mine, summary.total):
                tl.expected += 1
                if person.id in came:
                    tl.attended += 1
                elif person.id in on_leave:
                    tl.leave += 1
                else:
                    tl.absent += 1
        summary.occurrences.append((occ, tally))
    summary.people = [by_person[i] for i in sorted(by_person)]
    return summary


def monthly_summary_text(summary: MonthlySummary, tz: ZoneInfo | None = None) -> str:
    tz = tz or get_settings().tz
    head: dict[str, Any] = dict(branch=summary.branch.name, year=summary.year, month=summary.month)
    if not summary.occurrences:
        return t("duty.summary_none", **head)
    total = summary.total
    lines = [t("duty.summary_header", **head, events=len(summary.occurrences), expected=total.expected,
               attended=total.attended, leave=total.leave, absent=total.absent,
               rate=f"{summary.rate:.0%}" if summary.rate is not None else t("duty.none"))]
    for occ, tl in summary.occurrences:
        lines.append(t("duty.summary_event", when=fmt_at(occ.starts_at, tz), title=occ.event.title,
                       attended=tl.attended, expected=tl.expected, leave=tl.leave, absent=tl.absent))
    lines.append(t("duty.summary_people"))
    for person, tl in summary.people:
        lines.append(t("duty.summary_person", name=person.display_name, attended=tl.attended,
                       expected=tl.expected, leave=tl.leave, absent=tl.absent))
    return "\n".join(lines)


# -- volunteer shifts -----------------------------------------------------------------

def _shift(session: Session, shift_id: int, *, lock: bool = False) -> Shift:
    query = select(Shift).where(Shift.id == shift_id)
    if lock:  # serialise sign-ups to one shift (SQLite's BEGIN IMMEDIATE already does)
        query = query.with_for_update()
    shift = session.scalar(query)
    if shift is None:
        raise NotAllowed(t("duty.deny.shift_not_found"))
    return shift


def _shift_text(shift: Shift, tz: ZoneInfo) -> dict[str, Any]:
    return dict(title=shift.title, place=shift.place, when=fmt_at(shift.starts_at, tz),
                end=_hm(shift.ends_at, tz), capacity=shift.capacity,
                note=t("duty.note_line", note=shift.note) if shift.note else "")


def eligible_for_shift(session: Session, shift: Shift) -> list[Person]:
    """Members of the shift's branch (a community shift: of every branch in the community) and
    registered volunteers: scoped to it, or living in its grid (community)."""
    branches = ([_branch(session, shift.branch_id)] if shift.branch_id is not None
                else _community_branches(session, shift.community_id))
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
    return list(session.scalars(select(Person).where(or_(Person.id.in_(members), Person.id.in_(volunteers)))
                                .order_by(Person.id)))


def _active(session: Session, shift: Shift) -> list[ShiftSignup]:
    return list(session.scalars(select(ShiftSignup).where(ShiftSignup.shift_id == shift.id,
                                                          ShiftSignup.status == SignupStatus.active)
                                .order_by(ShiftSignup.signed_up_at, ShiftSignup.id)))


def publish_shift(session: Session, actor: Person | None, *, title: str, place: str, starts_at: datetime,
                  ends_at: datetime, capacity: int, branch_id: int | None = None,
                  community_id: int | None = None, note: str = "", cancel_cutoff_minutes: int = 1440,
                  now: datetime | None = None, notify: bool = True, tz: ZoneInfo | None = None) -> Shift:
    """Publish a shift of a branch (`branch_id`) or of a community (`community_id` only) and invite
    everyone eligible. Sign-ups may be cancelled until `cancel_cutoff_minutes` before the start."""
    now = _now(now)
    if branch_id is not None:
        community_id = scope_of_branch(session, _branch(session, branch_id)).community_id
    if community_id is None:
        raise NotAllowed(t("duty.deny.no_scope"))
    shift = Shift(community_id=community_id, branch_id=branch_id, title=title.strip(), place=place.strip(),
                  note=note.strip(), starts_at=starts_at.replace(microsecond=0),
                  ends_at=ends_at.replace(microsecond=0), capacity=capacity,
                  cancel_cutoff_minutes=cancel_cutoff_minutes, cancelled=False)
    actor = _require_person(actor)
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
    session.add(shift)
    session.flush()
    if notify:
        payload = {"text": t("duty.shift_published", **_shift_text(shift, tz or get_settings().tz)),
                   "buttons": [[{"text": t("duty.button_signup"), "callback_data": f"sh:s:{shift.id}"}]]}
        for person in eligible_for_shift(session, shift):
            _tell(session, person, f"shift-published:{shift.id}:{person.id}", payload)
    return shift


def cancel_shift(session: Session, shift_id: int, actor: Person | None, *, now: datetime | None = None,
                 tz: ZoneInfo | None = None) -> Shift:
    shift = _shift(session, shift_id)
    if not may_manage_shift(session, actor, shift):
        raise NotAllowed(t("duty.deny.not_shift_manager"))
    if shift.starts_at <= _now(now):
        raise NotAllowed(t("duty.deny.shift_started"))
    if not shift.cancelled:
        shift.cancelled = True
        payload = {"text": t("duty.shift_cancelled", **_shift_text(shift, tz or get_settings().tz))}
        for signup in _active(session, shift):
            _tell(session, session.get(Person, signup.person_id), f"shift-cancelled:{shift.id}:{signup.person_id}",
                  payload)
    return shift


def _open_shift(session: Session, shift_id: int, person: Person | None, now: datetime) -> tuple[Shift, Person]:
    person = _require_person(person)
    shift = _shift(session, shift_id, lock=True)
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
    now = _now(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _signup(session, shift, person)
    if row is not None and row.status is SignupStatus.active:
        raise NotAllowed(t("duty.deny.already_signed_up"))
    _require_eligible(session, shift, person)
    if len(_active(session, shift)) >= shift.capacity:
        raise NotAllowed(t("duty.deny.full"))
    return _activate(session, shift, person, now)


def _my_active(session: Session, shift: Shift, person: Person) -> ShiftSignup:
    row = _signup(session, shift, person)
    if row is None or row.status is not SignupStatus.active:
        raise NotAllowed(t("duty.deny.not_signed_up"))
    return row


def cancel_signup(session: Session, shift_id: int, person: Person | None, *,
                  now: datetime | None = None, tz: ZoneInfo | None = None) -> ShiftSignup:
    """Give the place back, only before the shift's cancel cutoff (after it: ask for a swap)."""
    now = _now(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _my_active(session, shift, person)
    deadline = shift.starts_at - timedelta(minutes=shift.cancel_cutoff_minutes)
    if now >= deadline:
        raise NotAllowed(t("duty.deny.cutoff", deadline=fmt_at(deadline, tz or get_settings().tz)))
    row.status, row.swap_requested_at = SignupStatus.cancelled, None
    session.flush()
    return row


def request_swap(session: Session, shift_id: int, person: Person | None, *, now: datetime | None = None,
                 tz: ZoneInfo | None = None) -> ShiftSignup:
    """Ask for someone to take your place (allowed until the start); eligible others are told."""
    now = _now(now)
    shift, person = _open_shift(session, shift_id, person, now)
    row = _my_active(session, shift, person)
    if row.swap_requested_at is not None:
        return row
    row.swap_requested_at = now
    session.flush()
    on_shift = {s.person_id for s in _active(session, shift)}
    payload = {"text": t("duty.swap_offer", name=person.display_name, **_shift_text(shift, tz or get_settings().tz)),
               "buttons": [[{"text": t("duty.button_take"), "callback_data": f"sh:t:{row.id}"}]]}
    for other in eligible_for_shift(session, shift):
        if other.id not in on_shift:
            _tell(session, other, f"swap-offer:{row.id}:{_stamp(now)}:{other.id}", payload)
    return row


def take_swap(session: Session, signup_id: int, person: Person | None, *, now: datetime | None = None,
              tz: ZoneInfo | None = None) -> ShiftSignup:
    """Take the place someone asked to swap; theirs becomes `swapped`, the giver is told."""
    now = _now(now)
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
    _tell(session, giver, f"swap-taken:{offered.id}:{person.id}", {"text": t(
        "duty.swap_taken", name=person.display_name, **_shift_text(shift, tz or get_settings().tz))})
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
        people = [(p, s.swap_requested) for s in _active(session, shift)
                  if (p := session.get(Person, s.person_id)) is not None]
        out.append(RosterEntry(shift, people))
    return out


def roster_text(entries: Sequence[RosterEntry], tz: ZoneInfo | None = None) -> str:
    tz = tz or get_settings().tz
    if not entries:
        return t("duty.roster_none")
    lines = [t("duty.roster_header")]
    for e in entries:
        names = "、".join(t("duty.roster_swap", name=p.display_name) if swap else p.display_name
                         for p, swap in e.people) or t("duty.none")
        lines.append(t("duty.roster_line", count=len(e.people), names=names, **_shift_text(e.shift, tz)))
    return "\n".join(lines)


def short_shifts(session: Session, now: datetime | None = None,
                 within: timedelta = SHORT_NOTICE) -> list[tuple[Shift, int]]:
    """Live shifts starting within `within` that still have fewer people than places, with their count."""
    now = _now(now)
    counts = (select(ShiftSignup.shift_id, func.count().label("n")).where(ShiftSignup.status == SignupStatus.active)
              .group_by(ShiftSignup.shift_id).subquery())
    rows = session.execute(
        select(Shift, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.shift_id == Shift.id)
        .where(Shift.cancelled == false(), Shift.starts_at > now, Shift.starts_at <= now + within,
               func.coalesce(counts.c.n, 0) < Shift.capacity)
        .order_by(Shift.starts_at, Shift.id)).all()
    return [(shift, int(n)) for shift, n in rows]


def _shift_managers(session: Session, shift: Shift) -> list[Person]:
    ids: list[int] = [shift.created_by_id] if shift.created_by_id else []
    if shift.branch_id is not None:
        secretary = _branch(session, shift.branch_id).secretary_id
        ids += [secretary] if secretary else []
    else:
        ids += list(session.scalars(select(RoleGrant.person_id).where(
            RoleGrant.role == Role.community_admin, RoleGrant.community_id == shift.community_id)))
    return [p for i in dict.fromkeys(ids) if (p := session.get(Person, i)) is not None]


def notify_short_shifts(session: Session, now: datetime | None = None, tz: ZoneInfo | None = None) -> int:
    """Tell the publisher and the secretary (community shifts: the admins) of every short shift, once."""
    queued = 0
    for shift, count in short_shifts(session, now):
        payload = {"text": t("duty.shift_short", count=count, missing=shift.capacity - count,
                             **_shift_text(shift, tz or get_settings().tz))}
        for person in _shift_managers(session, shift):
            queued += _tell(session, person, f"shift-short:{shift.id}:{person.id}", payload)
    return queued
