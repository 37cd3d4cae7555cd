"""Sessions (三会一课, 主题党日, study): creating, changing and cancelling events and occurrences, who is invited, the announcements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select, update
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, scope_of_branch
from core.duties.common import (
    HORIZON,
    branch_by_id,
    fmt_at,
    now_or_utc,
    require_manager,
    tell_person,
    zone_named,
)
from core.duties.recurrence import materialise, next_time, occurrence_times
from core.messages import t
from core.models import (
    Audience,
    BranchMember,
    Event,
    EventInvitee,
    EventKind,
    EventOccurrence,
    PartyGroup,
    Person,
)
from core.models.duties import DEFAULT_REMINDER_OFFSETS
from core.presentation import callbacks
from core.spaces import duty as space_duty

_EVENT_FIELDS = {"title", "place", "agenda", "starts_at", "duration_minutes", "rrule", "tz", "mandatory",
                 "reminder_offsets", "checkin_before", "checkin_after", "audience", "party_group_id",
                 "person_ids", "space_id"}

_SCHEDULE_FIELDS = {"starts_at", "rrule", "tz", "duration_minutes"}


def event_by_id(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotAllowed(t("duty.deny.event_not_found"))
    return event


def occurrence_by_id(session: Session, occurrence_id: int) -> EventOccurrence:
    occ = session.get(EventOccurrence, occurrence_id)
    if occ is None:
        raise NotAllowed(t("duty.deny.event_not_found"))
    return occ


def check_offsets(offsets: Sequence[int]) -> list[int]:
    if any(not isinstance(o, int) or isinstance(o, bool) or o <= 0 for o in offsets):
        raise NotAllowed(t("duty.deny.bad_offsets"))
    return sorted(set(offsets), reverse=True)


def set_audience(session: Session, event: Event, audience: Audience, party_group_id: int | None,
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


def check_schedule(event: Event, now: datetime) -> None:
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
                 rrule: str | None = None, tz: str, audience: Audience = Audience.branch,
                 party_group_id: int | None = None, person_ids: Sequence[int] = (),
                 mandatory: bool | None = None, reminder_offsets: Sequence[int] | None = None,
                 checkin_before: int = 30, checkin_after: int = 60, now: datetime | None = None,
                 notify: bool = True, space_id: int | None = None) -> Event:
    """Schedule a branch event (one-off, or recurring by `rrule`) and tell its attendees.

    `mandatory` defaults to True for 三会一课 and 主题党日, False for study sessions. Held in a
    共享空间 (`space_id`, or the one the place names), its meetings book it (core.spaces.duty).
    """
    now = now_or_utc(now)
    branch = branch_by_id(session, branch_id)
    actor = require_manager(session, actor, branch)
    if not title.strip() or not place.strip():
        raise NotAllowed(t("duty.deny.title_place"))
    event = Event(branch_id=branch.id, kind=kind, title=title.strip(), place=place.strip(),
                  agenda=agenda.strip(), starts_at=starts_at.replace(microsecond=0),
                  duration_minutes=duration_minutes, rrule=rrule, tz=tz,
                  mandatory=kind is not EventKind.study if mandatory is None else mandatory,
                  reminder_offsets_minutes=check_offsets(
                      DEFAULT_REMINDER_OFFSETS if reminder_offsets is None else reminder_offsets),
                  checkin_before_minutes=checkin_before, checkin_after_minutes=checkin_after,
                  cancelled=False, revision=0, created_by_id=actor.id, invitees=[])
    zone_named(event.tz)
    check_schedule(event, now)
    event.space_id = space_duty.space_for(session, _community_of(session, branch.id), event.place, space_id)
    session.add(event)
    set_audience(session, event, audience, party_group_id, person_ids)
    session.flush()
    first = materialise_ahead(session, event, now)
    space_duty.sync_event(session, event, now)
    if notify:
        announce(session, event, first, "new", f"event-new:{event.id}")
    return event


def _community_of(session: Session, branch_id: int) -> int:
    community_id = scope_of_branch(session, branch_by_id(session, branch_id)).community_id
    assert community_id is not None
    return community_id


def materialise_ahead(session: Session, event: Event, now: datetime) -> EventOccurrence | None:
    """Materialise the next HORIZON, and the next occurrence even when it lies further; return that one."""
    nxt = next_time(event, now)
    materialise(session, event, now, max(now + HORIZON, (nxt or now) + timedelta(seconds=1)))
    if nxt is None:
        return None
    return session.scalar(select(EventOccurrence).where(EventOccurrence.event_id == event.id,
                                                        EventOccurrence.starts_at == nxt))


def event_text(event: Event, at: datetime | None) -> dict[str, Any]:
    tz = zone_named(event.tz)
    return dict(title=event.title, kind=t(f"duty.kind.{event.kind.value}"), place=event.place,
                when=fmt_at(at, tz) if at else t("duty.none"),
                repeat=t("duty.repeats") if event.rrule else "",
                agenda=t("duty.agenda_line", agenda=event.agenda) if event.agenda else "")


def answer_buttons(occ: EventOccurrence) -> list[list[dict[str, str]]]:
    return [[{"text": t("duty.button_attend"), "callback_data": callbacks.event_answer("y", occ.id)},
             {"text": t("duty.button_leave"), "callback_data": callbacks.event_answer("n", occ.id)}]]


def announce(session: Session, event: Event, occ: EventOccurrence | None, what: str, key: str,
              people: Iterable[Person] | None = None) -> None:
    payload: dict[str, Any] = {"text": t(f"duty.event_{what}", **event_text(event, occ.starts_at if occ else None))}
    if occ is not None and what in ("new", "changed"):
        payload["buttons"] = answer_buttons(occ)
    for person in (people if people is not None else event_attendees(session, event)):
        tell_person(session, person, f"{key}:{person.id}", payload)


def update_event(session: Session, event_id: int, actor: Person | None, *, now: datetime | None = None,
                 notify: bool = True, **changes: Any) -> Event:
    """Change an event's details, schedule or audience; future occurrences follow, attendees are told.

    Keys: title, place, agenda, starts_at, duration_minutes, rrule, tz, mandatory, reminder_offsets,
    checkin_before, checkin_after, audience, party_group_id, person_ids. A one-off event that
    moves keeps its occurrence (and its answers); a recurring one cancels the future
    occurrences its new rule no longer has.
    """
    now = now_or_utc(now)
    unknown = set(changes) - _EVENT_FIELDS
    if unknown:
        raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
    event = event_by_id(session, event_id)
    require_manager(session, actor, branch_by_id(session, event.branch_id))
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
        event.reminder_offsets_minutes = check_offsets(changes["reminder_offsets"])
    if "place" in changes or "space_id" in changes:
        event.space_id = space_duty.space_for(session, _community_of(session, event.branch_id), event.place,
                                              changes.get("space_id"))
    if {"audience", "party_group_id", "person_ids"} & set(changes):
        set_audience(session, event, Audience(changes.get("audience", event.audience)),
                      changes.get("party_group_id", event.party_group_id),
                      changes.get("person_ids", [i.person_id for i in event.invitees]))
    if not event.title or not event.place:
        raise NotAllowed(t("duty.deny.title_place"))
    zone_named(event.tz)
    check_schedule(event, now)
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
    first = materialise_ahead(session, event, now)
    space_duty.sync_event(session, event, now)
    if notify:
        after = event_attendees(session, event)
        gone = [p for i in before - {p.id for p in after} if (p := session.get(Person, i)) is not None]
        announce(session, event, first, "changed", f"event-changed:{event.id}:{event.revision}", after)
        announce(session, event, first, "uninvited", f"event-uninvited:{event.id}:{event.revision}", gone)
    return event


def cancel_event(session: Session, event_id: int, actor: Person | None, *,
                 now: datetime | None = None) -> Event:
    """Cancel an event (the whole series) and tell its attendees; past occurrences stay for the record."""
    now = now_or_utc(now)
    event = event_by_id(session, event_id)
    require_manager(session, actor, branch_by_id(session, event.branch_id))
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
    space_duty.sync_event(session, event, now)
    payload = {"text": t("duty.event_cancelled", **event_text(event, nxt.starts_at if nxt else event.starts_at))}
    for person in event_attendees(session, event):
        tell_person(session, person, f"event-cancelled:{event.id}:{person.id}", payload)
    return event


def cancel_occurrence(session: Session, occurrence_id: int, actor: Person | None, *,
                      now: datetime | None = None) -> EventOccurrence:
    """Call off one meeting of a series (or the one of a one-off event) and tell its attendees."""
    now = now_or_utc(now)
    occ = occurrence_by_id(session, occurrence_id)
    event = occ.event
    require_manager(session, actor, branch_by_id(session, event.branch_id))
    if occ.starts_at <= now:
        raise NotAllowed(t("duty.deny.started"))
    if not occ.cancelled:
        occ.cancelled, occ.reminders_dirty = True, True
        session.flush()
        space_duty.sync_event(session, event, now)
        payload = {"text": t("duty.occurrence_cancelled", title=event.title,
                             when=fmt_at(occ.starts_at, zone_named(event.tz)))}
        for person in attendees(session, occ):
            tell_person(session, person, f"occurrence-cancelled:{occ.id}:{person.id}", payload)
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
