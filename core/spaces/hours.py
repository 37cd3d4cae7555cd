"""Opening hours of a space: read from the registry, asked per day, said in Chinese.

The registry writes them as text — "daily 08:30-20:00", "mon-fri 08:30-17:30, sat 09:00-12:00"
(";" separates too, for CSV cells), a bare "08:30-20:00" is every day — or as a mapping of days
(mon..sun, or a range "mon-fri") to "HH:MM-HH:MM" ("closed" or empty: closed). Stored as
{"0".."6": ["HH:MM", "HH:MM"]}, Monday = "0"; a day that is missing is closed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.messages import t

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALIASES = {"daily": (0, 6), "every day": (0, 6), "weekdays": (0, 4), "weekends": (5, 6)}
CLOSED = ("closed", "", "none")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
EXAMPLE = "mon-fri 08:30-17:30, sat 09:00-12:00"

Hours = dict[str, list[str]]


class BadHours(ValueError):
    """The hours cannot be read (the message says why, in English, for FILE:LINE errors)."""


def _days(words: str) -> range:
    words = words.strip().lower()
    if words in ALIASES:
        first, last = ALIASES[words]
        return range(first, last + 1)
    parts = [p.strip() for p in words.split("-")]
    if len(parts) not in (1, 2) or any(p not in DAYS for p in parts):
        raise BadHours(f"unknown day {words!r} (use {', '.join(DAYS)}, a range like mon-fri, or daily)")
    first, last = DAYS.index(parts[0]), DAYS.index(parts[-1])
    if last < first:
        raise BadHours(f"day range {words!r} runs backwards")
    return range(first, last + 1)


def _span(words: str) -> list[str] | None:
    """["08:30", "17:30"] from "8:30-17:30"; None for closed."""
    words = str(words).strip().lower()
    if words in CLOSED:
        return None
    match = _SPAN.match(words)
    if match is None:
        raise BadHours(f"{words!r} is not a time span like 08:30-17:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (0 <= h1 <= 23 and 0 <= m1 <= 59 and 0 <= h2 <= 24 and 0 <= m2 <= 59) or (h2 == 24 and m2):
        raise BadHours(f"{words!r} is not a time of day")
    if (h2, m2) <= (h1, m1):
        raise BadHours(f"{words!r} closes before it opens")
    return [f"{h1:02d}:{m1:02d}", f"{h2:02d}:{m2:02d}"]


def parse(value: Any) -> Hours:
    """The stored form of the registry's `hours`; BadHours when it cannot be read."""
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, str) and value.strip():
        pairs = []
        for part in re.split(r"[,;，；]", value):
            part = part.strip()
            if not part:
                continue
            if _SPAN.match(part):  # a bare span: every day
                pairs.append(("daily", part))
                continue
            days, _, span = part.rpartition(" ")
            if not days:
                raise BadHours(f"{part!r} names no day (write it like {EXAMPLE!r})")
            pairs.append((days, span))
    else:
        raise BadHours(f"no opening hours (write them like {EXAMPLE!r})")
    hours: Hours = {}
    for days, span in pairs:
        opening = _span("" if span is None else span)
        for day in _days(days):
            if opening is None:
                hours.pop(str(day), None)
            else:
                hours[str(day)] = opening
    if not hours:
        raise BadHours("the space is never open")
    return hours


def _clock(value: str) -> time:
    hour, minute = (int(p) for p in value.split(":"))
    return time(23, 59, 59) if hour == 24 else time(hour, minute)


def opening(hours: Hours, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[open, close) of `day` as aware times in `tz`; None when closed that day."""
    span = hours.get(str(day.weekday()))
    if not span:
        return None
    start = datetime.combine(day, _clock(span[0]), tz)
    end = datetime.combine(day, _clock(span[1]), tz)
    if span[1] == "24:00":
        end = datetime.combine(day + timedelta(days=1), time(0, 0), tz)
    return start, end


def within(hours: Hours, start: datetime, end: datetime, tz: ZoneInfo) -> bool:
    """Whether [start, end) lies inside one day's opening hours."""
    span = opening(hours, start.astimezone(tz).date(), tz)
    return span is not None and span[0] <= start and end <= span[1]


def open_minutes(hours: Hours, first: date, last: date, tz: ZoneInfo) -> float:
    """How many minutes the space is open from `first` to `last` (both included)."""
    total, day = 0.0, first
    while day <= last:
        span = opening(hours, day, tz)
        if span is not None:
            total += (span[1] - span[0]).total_seconds() / 60
        day += timedelta(days=1)
    return total


def describe(hours: Hours) -> str:
    """周一至周五 08:30-17:30，周六 09:00-12:00 (days with the same hours run together)."""
    names = [t("spaces.weekday", day=d) for d in t("duty.weekdays")]
    groups: list[tuple[int, int, list[str]]] = []
    for day in range(7):
        span = hours.get(str(day))
        if span and groups and groups[-1][1] == day - 1 and groups[-1][2] == span:
            groups[-1] = (groups[-1][0], day, span)
        elif span:
            groups.append((day, day, span))
    parts = []
    for first, last, span in groups:
        days = names[first] if first == last else t("spaces.day_range", first=names[first], last=names[last])
        if (first, last) == (0, 6):
            days = t("spaces.every_day")
        parts.append(f"{days} {span[0]}-{span[1]}")
    return "，".join(parts)
