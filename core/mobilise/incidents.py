"""Incidents for operators (`gridbot mobilise list`, `gridbot mobilise events`): plain rows."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.mobilise import area, events
from core.models import Grid, Incident, IncidentCall, Person


def listing(session: Session, tz: ZoneInfo, limit: int = 100) -> list[dict[str, Any]]:
    called = dict(session.execute(select(IncidentCall.incident_id, func.count())
                                  .group_by(IncidentCall.incident_id)).tuples().all())
    return [{"id": i.id, "kind": i.kind.value, "area": area.label(session, i),
             "declared_at": i.declared_at.astimezone(tz).isoformat(timespec="seconds"),
             "closed_at": i.closed_at.astimezone(tz).isoformat(timespec="seconds") if i.closed_at else None,
             "called": called.get(i.id, 0)}
            for i in session.scalars(select(Incident).order_by(Incident.id.desc()).limit(limit))]


def event_rows(session: Session, incident_id: int, tz: ZoneInfo) -> list[dict[str, Any]]:
    rows = events.of(session, incident_id)
    people = dict(session.execute(select(Person.id, Person.display_name).where(
        Person.id.in_({r.actor_id for r in rows if r.actor_id is not None}))).tuples().all())
    grids = dict(session.execute(select(Grid.id, Grid.code)).tuples().all())
    return [{"at": r.at.astimezone(tz).isoformat(timespec="seconds"), "kind": r.kind,
             "actor": people.get(r.actor_id) if r.actor_id is not None else None,
             "grid": grids.get(r.grid_id) if r.grid_id is not None else None, "task": r.task_id,
             "detail": r.detail} for r in rows]
