"""A called person's answer: 到, 稍后到 with an ETA (buttons, or typed: "20分钟", "半小时",
"1小时", "18:30"), or 不能到. Only the person called may answer, only while the incident is
going on; a later answer replaces the earlier one (each is an event). When everyone of a grid has
answered, its leaders get the roster at once (core.mobilise.roll)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import outbox
from core.mobilise import area, buttons, events, roll
from core.mobilise.declare import answer_buttons, call_key
from core.models import Answer, Grid, Incident, IncidentCall, IncidentCheckIn, Person

ETA_LIMIT = 24 * 60  # minutes: a later "ETA" is not an answer we take
_NUMBERS = {"半": 0.5, "一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "十": 10, "二十": 20,
            "三十": 30, "四十": 40, "四十五": 45, "五十": 50, "一个半": 1.5, "两个半": 2.5}
_CLOCK = re.compile(r"(\d{1,2})(?:[:：点时])(\d{1,2}|半)?分?(?:左右|前)?")
_MINUTES = re.compile(r"(\d+(?:\.\d+)?|[一两二三四五六十]+)\s*(?:分钟|分|min|mins|minutes)?(?:左右|后|以后|之后)?")
_HOURS = re.compile(r"(\d+(?:\.\d+)?|一个半|两个半|[半一两二三四五六])\s*(?:个)?\s*(?:小时|钟头|h|hr|hours?)(?:左右|后|以后|之后)?")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return _NUMBERS.get(text)


def parse_eta(text: str, now: datetime, tz: ZoneInfo) -> int | None:
    """Minutes from `now` until the typed ETA, or None when the text is not one."""
    words = unicodedata.normalize("NFKC", "".join(text.split())).lower().removeprefix("大约").removeprefix("约")
    if not words:
        return None
    minutes: float | None = None
    match = _HOURS.fullmatch(words)
    if match:
        hours = _number(match.group(1))
        minutes = hours * 60 if hours is not None else None
    elif (match := _CLOCK.fullmatch(words)) and ("点" in words or ":" in words or "时" in words):
        hour = int(match.group(1))
        minute = 30 if match.group(2) == "半" else int(match.group(2) or 0)
        if hour > 23 or minute > 59:
            return None
        local = now.astimezone(tz)
        at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= local:
            at += timedelta(days=1)
        minutes = (at - local).total_seconds() / 60
    elif (match := _MINUTES.fullmatch(words)) is not None:
        minutes = _number(match.group(1))
    if minutes is None or not 1 <= minutes <= ETA_LIMIT:
        return None
    return round(minutes)


def call_of(session: Session, incident_id: int, person: Person | None) -> IncidentCall:
    """The person's call in the incident; NotAllowed when they were not called."""
    call = session.scalar(select(IncidentCall).where(IncidentCall.incident_id == incident_id,
                                                     IncidentCall.person_id == person.id)) if person else None
    if call is None:
        raise NotAllowed(t("mobilise.deny.not_called"))
    return call


def answer(session: Session, person: Person | None, incident_id: int, given: Answer, *,
           eta_minutes: int | None = None, now: datetime, tz: ZoneInfo) -> IncidentCall:
    incident = area.open_incident(session, incident_id)
    call = call_of(session, incident.id, person)
    if given is Answer.late and eta_minutes is not None and not 1 <= eta_minutes <= ETA_LIMIT:
        raise NotAllowed(t("mobilise.deny.eta"))
    call.answer, call.answered_at = given, now
    outbox.reached(session, call_key(incident.id, call.person_id))  # the call got there: no 重发 copy
    call.eta_at = now + timedelta(minutes=eta_minutes) if given is Answer.late and eta_minutes else None
    events.record(session, incident.id, "answered", now, actor=person, grid_id=call.grid_id, answer=given.value,
                  **({"eta_minutes": eta_minutes} if given is Answer.late and eta_minutes else {}))
    session.flush()
    roll.roster_if_complete(session, incident, call.grid_id, now, tz)
    return call


def answer_line(call: IncidentCall, tz: ZoneInfo) -> str:
    if call.answer is None:
        return ""
    if call.answer is Answer.late:
        eta = call.eta_at.astimezone(tz).strftime("%H:%M") if call.eta_at else t("mobilise.eta_unknown")
        return t("mobilise.your_answer_late", at=eta)
    return t(f"mobilise.your_answer_{call.answer.value}")


def on_site(session: Session, incident_id: int, person_id: int) -> IncidentCheckIn | None:
    return session.scalar(select(IncidentCheckIn).where(
        IncidentCheckIn.incident_id == incident_id, IncidentCheckIn.person_id == person_id,
        IncidentCheckIn.checked_out_at.is_(None)))


def call_buttons(session: Session, call: IncidentCall) -> list[list[dict[str, Any]]]:
    """Under the call once answered: 到岗签到 (or 离开 when on site) for 到 / 稍后到, then the
    answers again, to change one's mind."""
    rows: list[list[dict[str, Any]]] = []
    if call.answer in (Answer.coming, Answer.late):
        if on_site(session, call.incident_id, call.person_id) is not None:
            rows.append([buttons.button(t("mobilise.button_check_out"), buttons.CHECK_OUT, call.incident_id)])
        else:
            rows.append([buttons.button(t("mobilise.button_check_in"), buttons.CHECK_IN, call.incident_id)])
    return rows + answer_buttons(call.incident_id)


def eta_buttons(incident_id: int) -> list[list[dict[str, Any]]]:
    return [[buttons.button(t(f"mobilise.eta_{m}"), buttons.ETA, incident_id, m) for m in buttons.ETA_CHOICES]]


def told(session: Session, incident: Incident, call: IncidentCall, tz: ZoneInfo) -> str:
    """What the person is told after answering: their answer and, when coming, where to go."""
    grid = session.get(Grid, call.grid_id)
    if call.answer is Answer.cannot:
        return t("mobilise.told_cannot")
    return t("mobilise.told_coming", answer=answer_line(call, tz), grid=grid.name if grid else "")
