"""The command centre's 战时 page: the incidents a person may follow (their grids of each), and for
one of them the map of its grids coloured by whether anyone is on site, each grid's answers, the
open tasks and the CSV of its report (audited as mobilise.export). Only the grids of the person's
view (core.centre.scope) where mobilise.roll holds are shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core import audit
from core.centre.scope import View
from core.mobilise import area, report, roll
from core.mobilise.declare import kind_label
from core.models import Incident, Person


@dataclass
class Page:
    incidents: list[dict[str, Any]] = field(default_factory=list)  # id, title, open
    current: dict[str, Any] | None = None  # id, title, state, order, closed
    map: dict[str, Any] = field(default_factory=dict)  # roll.map_data
    totals: dict[str, int] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)  # grids with nobody on site


def _grids(session: Session, person: Person | None, view: View, incident_id: int) -> list[int]:
    return [g for g in area.visible_grids(session, person, incident_id) if g in view.grid_ids]


def _title(session: Session, incident: Incident) -> str:
    return f"#{incident.id} {kind_label(incident.kind)} · {area.label(session, incident)}"


def followed(session: Session, view: View, chosen: int | None) -> tuple[Incident | None, list[int], list[Incident]]:
    """(the incident shown, its grids in view, every incident the person follows), newest first;
    the one shown is `chosen` if followed, else the newest still open, else the newest."""
    person = session.get(Person, view.person_id)
    incidents = [i for i in area.seen_by(session, person, closed=True) if _grids(session, person, view, i.id)]
    current = next((i for i in incidents if i.id == chosen), None) or \
        next((i for i in incidents if i.closed_at is None), None) or (incidents[0] if incidents else None)
    return current, (_grids(session, person, view, current.id) if current else []), incidents


def page(session: Session, view: View, chosen: int | None, now: datetime, tz: ZoneInfo) -> Page:
    current, grids, incidents = followed(session, view, chosen)
    out = Page(incidents=[{"id": i.id, "title": _title(session, i), "open": i.closed_at is None} for i in incidents])
    if current is None:
        return out
    state = (roll.header(session, current, now, tz).split("（", 1)[-1].split("）", 1)[0])
    out.current = {"id": current.id, "title": _title(session, current), "state": state,
                   "order": current.order_text, "closed": current.closed_at is not None}
    out.map = roll.map_data(session, current, grids)
    rows = out.map["grids"]
    out.totals = {key: sum(r[key] for r in rows) for key in ("called", "answered", "coming", "late", "cannot",
                                                              "no_answer", "on_site", "open_tasks")}
    out.empty = [r["name"] for r in rows if r["on_site"] == 0]
    return out


def map_json(session: Session, view: View, chosen: int | None) -> dict[str, Any] | None:
    current, grids, _ = followed(session, view, chosen)
    return roll.map_data(session, current, grids) if current is not None else None


def export(session: Session, view: View, incident_id: int, now: datetime) -> tuple[int, list[list[object]]] | None:
    """The report's CSV rows of the incident's grids in view (None if the person follows none of
    them); the export is audited."""
    current, grids, _ = followed(session, view, incident_id)
    if current is None or current.id != incident_id:
        return None
    audit.record(session, session.get(Person, view.person_id), "mobilise.export", f"incident:{incident_id}",
                 {"format": "csv", "grids": len(grids)}, at=now)
    return current.id, report.csv_rows(session, current, grids, now)
