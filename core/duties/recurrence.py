"""Recurrence: RFC 5545 rules (dateutil.rrule) read as wall-clock time in the event's zone, and their occurrences materialised ahead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import false, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.duties.common import HORIZON, insert_ignore, now_or_utc, zone_named
from core.messages import t
from core.models import (
    Event,
    EventOccurrence,
)

ALLOWED_FREQ = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY"}


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",")]


def _plausible(body: str) -> bool:
    """Reject what dateutil accepts but can never match (it would search up to year 9999 for
    BYMONTHDAY=40 or BYMONTH=2;BYMONTHDAY=30): only the parts a branch calendar needs, in range."""
    try:
        parts = dict(part.split("=", 1) for part in body.split(";"))
        if set(parts) - _RULE_PARTS or parts.get("FREQ") not in ALLOWED_FREQ:
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
    tz = zone_named(event.tz)
    found = parse_rule(event.rrule, event.starts_at.astimezone(tz)).after(after.astimezone(tz), inc=True)
    return found.astimezone(timezone.utc) if found else None


def occurrence_times(event: Event, start: datetime, end: datetime) -> list[datetime]:
    return rule_times(event.rrule, event.starts_at, zone_named(event.tz), start, end)


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
    insert_ignore(session, EventOccurrence, rows, ["event_id", "starts_at"])


def materialise_all(session: Session, now: datetime | None = None, horizon: timedelta = HORIZON) -> None:
    """Materialise every live event for the next `horizon` (the scheduler's sync does this)."""
    now = now_or_utc(now)
    for event in session.scalars(select(Event).where(Event.cancelled == false()).order_by(Event.id)):
        materialise(session, event, now, now + horizon)


def occurrences(session: Session, event: Event, start: datetime, end: datetime, *,
                include_cancelled: bool = False, now: datetime | None = None) -> list[EventOccurrence]:
    """The occurrences of `event` starting in [start, end); those from `now` on are materialised on
    demand, earlier ones exist only if they were materialised while still ahead (never after the fact)."""
    materialise(session, event, max(start, now_or_utc(now)), end)
    query = select(EventOccurrence).where(EventOccurrence.event_id == event.id,
                                          EventOccurrence.starts_at >= start, EventOccurrence.starts_at < end)
    if not include_cancelled:
        query = query.where(EventOccurrence.cancelled == false())
    return list(session.scalars(query.order_by(EventOccurrence.starts_at)))
