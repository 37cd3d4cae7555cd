"""On site: a called person shares a Telegram location (WGS-84) and it is checked against their
unit's grid polygon with the registry's router (core.places.router: the same point-in-grid code
that routes residents' shared locations). Inside: checked in (at the task they hold, if any);
outside: refused with the grid's name. 离开 checks out; hours count from check-in to check-out (or
to the incident's close)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.messages import t
from core.mobilise import area, events
from core.mobilise.answers import call_of, on_site
from core.mobilise.tasks import taken_by
from core.models import Answer, Grid, IncidentCheckIn, Person
from core.places.router import Router


def duration_text(seconds: float) -> str:
    """1小时20分 / 35分钟."""
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return t("mobilise.minutes", minutes=minutes)
    return t("mobilise.hours_minutes", hours=minutes // 60, minutes=minutes % 60)


def check_in(session: Session, router: Router, person: Person | None, incident_id: int, lat: float, lon: float, *,
             now: datetime, tz: ZoneInfo) -> IncidentCheckIn:
    incident = area.open_incident(session, incident_id)
    call = call_of(session, incident.id, person)
    assert person is not None
    here = on_site(session, incident.id, person.id)
    if here is not None:
        raise NotAllowed(t("mobilise.deny.on_site", at=here.checked_in_at.astimezone(tz).strftime("%H:%M")))
    grid = session.get(Grid, call.grid_id)
    assert grid is not None
    inside = router.grids_at(lat, lon)
    if grid.code not in inside:
        raise NotAllowed(t("mobilise.deny.outside", grid=grid.name))
    task = taken_by(session, incident.id, person.id)
    if call.answer not in (Answer.coming, Answer.late):  # there in person: that is an answer too
        call.answer, call.answered_at, call.eta_at = Answer.coming, now, None
        events.record(session, incident.id, "answered", now, actor=person, grid_id=grid.id, answer="coming",
                      by="check_in")
    row = IncidentCheckIn(incident_id=incident.id, person_id=person.id, grid_id=grid.id,
                          task_id=task.id if task else None, lat=lat, lon=lon, checked_in_at=now)
    session.add(row)
    session.flush()
    events.record(session, incident.id, "checked_in", now, actor=person, grid_id=grid.id,
                  task_id=task.id if task else None)
    return row


def check_out(session: Session, person: Person | None, incident_id: int, *, now: datetime) -> IncidentCheckIn:
    incident = area.open_incident(session, incident_id)
    call_of(session, incident.id, person)
    assert person is not None
    row = on_site(session, incident.id, person.id)
    if row is None:
        raise NotAllowed(t("mobilise.deny.not_on_site"))
    row.checked_out_at = now
    events.record(session, incident.id, "checked_out", now, actor=person, grid_id=row.grid_id, task_id=row.task_id,
                  minutes=int((now - row.checked_in_at).total_seconds() // 60))
    session.flush()
    return row
