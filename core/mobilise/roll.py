"""The live roll: per grid, who was called, who answered what, who is on site, the open tasks —
as a chat summary (/zhanshi), as each grid's 作战单元 roster for its leaders, and as the command
centre's map. Names appear only in a roster and to people with mobilise.roll for the grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.messages import t
from core.messaging import outbox
from core.mobilise import area, buttons, events
from core.mobilise.declare import kind_label
from core.mobilise.people import leaders
from core.models import (
    Answer,
    Grid,
    Incident,
    IncidentCall,
    IncidentCheckIn,
    IncidentGrid,
    IncidentTask,
    Person,
    TaskState,
)

ROSTER_KIND = "mobilise.roster"


@dataclass
class GridRoll:
    grid_id: int
    code: str
    name: str
    called: int = 0
    coming: int = 0
    late: int = 0
    cannot: int = 0
    on_site: int = 0
    open_tasks: int = 0
    tasks: int = 0
    tasks_done: int = 0

    @property
    def answered(self) -> int:
        return self.coming + self.late + self.cannot

    @property
    def no_answer(self) -> int:
        return self.called - self.answered

    def as_dict(self) -> dict[str, Any]:
        return {"grid_id": self.grid_id, "code": self.code, "name": self.name, "called": self.called,
                "answered": self.answered, "coming": self.coming, "late": self.late, "cannot": self.cannot,
                "no_answer": self.no_answer, "on_site": self.on_site, "open_tasks": self.open_tasks,
                "tasks": self.tasks, "tasks_done": self.tasks_done}


def figures(session: Session, incident_id: int, grid_ids: list[int] | None = None) -> list[GridRoll]:
    """Each grid's figures now, by grid code (only `grid_ids`, when given)."""
    rows = {g.id: GridRoll(g.id, g.code, g.name) for g in area.grids(session, incident_id)
            if grid_ids is None or g.id in grid_ids}
    for grid_id, answer, n in session.execute(
            select(IncidentCall.grid_id, IncidentCall.answer, func.count()).where(IncidentCall.incident_id == incident_id)
            .group_by(IncidentCall.grid_id, IncidentCall.answer)):
        row = rows.get(grid_id)
        if row is None:
            continue
        row.called += n
        if answer is not None:
            setattr(row, Answer(answer).value, getattr(row, Answer(answer).value) + n)
    for grid_id, n in session.execute(
            select(IncidentCheckIn.grid_id, func.count(func.distinct(IncidentCheckIn.person_id)))
            .where(IncidentCheckIn.incident_id == incident_id, IncidentCheckIn.checked_out_at.is_(None))
            .group_by(IncidentCheckIn.grid_id)):
        if grid_id in rows:
            rows[grid_id].on_site = n
    for grid_id, state, n in session.execute(
            select(IncidentTask.grid_id, IncidentTask.state, func.count()).where(IncidentTask.incident_id == incident_id)
            .group_by(IncidentTask.grid_id, IncidentTask.state)):
        row = rows.get(grid_id)
        if row is None:
            continue
        row.tasks += n
        if TaskState(state) is TaskState.done:
            row.tasks_done += n
        else:
            row.open_tasks += n
    return list(rows.values())


def on_site_grids(session: Session, incident_id: int) -> set[int]:
    return set(session.scalars(select(IncidentCheckIn.grid_id).where(
        IncidentCheckIn.incident_id == incident_id, IncidentCheckIn.checked_out_at.is_(None))))


def task_line(session: Session, task: IncidentTask) -> str:
    grid = session.get(Grid, task.grid_id)
    taker = session.get(Person, task.taken_by_id) if task.taken_by_id else None
    state = t(f"mobilise.task_state.{task.state.value}", name=taker.display_name if taker else "")
    return t("mobilise.task_line", id=task.id, kind=t(f"mobilise.task_kind.{task.kind.value}"),
             grid=grid.name if grid else "", text=task.text, state=state)


def open_tasks(session: Session, incident_id: int, grid_ids: list[int] | None = None) -> list[IncidentTask]:
    query = select(IncidentTask).where(IncidentTask.incident_id == incident_id,
                                       IncidentTask.state != TaskState.done).order_by(IncidentTask.id)
    if grid_ids is not None:
        query = query.where(IncidentTask.grid_id.in_(grid_ids))
    return list(session.scalars(query))


def minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def header(session: Session, incident: Incident, now: datetime, tz: ZoneInfo) -> str:
    state = (t("mobilise.state_closed", at=incident.closed_at.astimezone(tz).strftime("%m-%d %H:%M"))
             if incident.closed_at is not None
             else t("mobilise.state_open", minutes=minutes_between(incident.declared_at, now)))
    return t("mobilise.roll_header", id=incident.id, kind=kind_label(incident.kind),
             area=area.label(session, incident), state=state, order=incident.order_text)


def roll_text(session: Session, incident: Incident, grid_ids: list[int], now: datetime, tz: ZoneInfo) -> str:
    """/zhanshi: the incident's figures over `grid_ids` (the person's), the grids with nobody on
    site, one line per grid and the open tasks."""
    rows = figures(session, incident.id, grid_ids)
    total = GridRoll(0, "", "")
    for r in rows:
        for key in ("called", "coming", "late", "cannot", "on_site"):
            setattr(total, key, getattr(total, key) + getattr(r, key))
    lines = [header(session, incident, now, tz),
             t("mobilise.roll_total", called=total.called, coming=total.coming, late=total.late,
               cannot=total.cannot, no_answer=total.no_answer, on_site=total.on_site)]
    empty = [r.name for r in rows if r.on_site == 0]
    if incident.closed_at is None:
        lines.append(t("mobilise.roll_empty", grids="、".join(empty)) if empty else t("mobilise.roll_all_manned"))
    lines += [t("mobilise.roll_grid", name=r.name, called=r.called, coming=r.coming, late=r.late, cannot=r.cannot,
                no_answer=r.no_answer, on_site=r.on_site) for r in rows]
    tasks = open_tasks(session, incident.id, grid_ids)
    lines.append(t("mobilise.roll_tasks", count=len(tasks)) if tasks else t("mobilise.roll_no_tasks"))
    lines += [task_line(session, task) for task in tasks]
    return "\n".join(lines)


def _names(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Person.id, Person.display_name).where(Person.id.in_(ids))).tuples().all())


def roster_text(session: Session, incident: Incident, grid_id: int, now: datetime, tz: ZoneInfo) -> str:
    """A grid's 作战单元: its called people by answer, and who is on site now."""
    grid = session.get(Grid, grid_id)
    calls = list(session.scalars(select(IncidentCall).where(IncidentCall.incident_id == incident.id,
                                                            IncidentCall.grid_id == grid_id).order_by(IncidentCall.id)))
    names = _names(session, [c.person_id for c in calls])
    groups: dict[str, list[str]] = {"coming": [], "late": [], "cannot": [], "none": []}
    for call in calls:
        name = names.get(call.person_id, "")
        if call.answer is Answer.late and call.eta_at is not None:
            name = t("mobilise.roster_eta", name=name, at=call.eta_at.astimezone(tz).strftime("%H:%M"))
        groups[call.answer.value if call.answer is not None else "none"].append(name)
    here = sorted(set(session.scalars(select(IncidentCheckIn.person_id).where(
        IncidentCheckIn.incident_id == incident.id, IncidentCheckIn.grid_id == grid_id,
        IncidentCheckIn.checked_out_at.is_(None)))))
    lines = [t("mobilise.roster_header", grid=grid.name if grid else "", kind=kind_label(incident.kind),
               id=incident.id, at=now.astimezone(tz).strftime("%H:%M"))]
    for key in ("coming", "late", "cannot", "none"):
        lines.append(t(f"mobilise.roster_{key}", count=len(groups[key]),
                       names="、".join(groups[key]) or t("mobilise.nobody")))
    on_site = _names(session, here)
    lines.append(t("mobilise.roster_on_site", count=len(here),
                   names="、".join(on_site[i] for i in here) or t("mobilise.nobody")))
    return "\n".join(lines)


def roster_buttons(incident_id: int, grid_id: int) -> list[list[dict[str, Any]]]:
    return [[buttons.button(t("mobilise.button_refresh"), buttons.ROSTER, incident_id, grid_id)]]


def send_roster(session: Session, incident: Incident, grid_id: int, now: datetime, tz: ZoneInfo) -> int:
    """The grid's roster to its leaders, once per incident and grid (the IncidentGrid row is
    claimed first, so two passes cannot both send it); how many leaders it went to."""
    claimed = session.execute(update(IncidentGrid).where(
        IncidentGrid.incident_id == incident.id, IncidentGrid.grid_id == grid_id,
        IncidentGrid.roster_sent_at.is_(None)).values(roster_sent_at=now).execution_options(synchronize_session=False))
    if not getattr(claimed, "rowcount", 0):
        return 0
    text = roster_text(session, incident, grid_id, now, tz)
    sent = 0
    for leader in leaders(session, grid_id):
        assert leader.telegram_id is not None
        sent += outbox.enqueue(session, dedupe_key=f"mobilise:roster:{incident.id}:{grid_id}:{leader.id}",
                               kind=ROSTER_KIND, chat_id=leader.telegram_id,
                               payload={"text": text, "buttons": roster_buttons(incident.id, grid_id)})
    events.record(session, incident.id, "roster", now, grid_id=grid_id, leaders=sent)
    return sent


def roster_if_complete(session: Session, incident: Incident, grid_id: int, now: datetime, tz: ZoneInfo) -> int:
    """Send the grid's roster as soon as everyone called there has answered (else the sweep sends
    it ROSTER minutes after the declaration)."""
    waiting = session.scalar(select(func.count()).select_from(IncidentCall).where(
        IncidentCall.incident_id == incident.id, IncidentCall.grid_id == grid_id, IncidentCall.answer.is_(None)))
    return send_roster(session, incident, grid_id, now, tz) if not waiting else 0


def map_data(session: Session, incident: Incident, grid_ids: list[int]) -> dict[str, Any]:
    """The command centre's map of the incident: a GeoJSON FeatureCollection of its grids in view,
    each with its figures, and the open tasks."""
    rows = figures(session, incident.id, grid_ids)
    shapes = dict(session.execute(select(Grid.id, Grid.polygon).where(Grid.id.in_(grid_ids))).tuples().all())
    features = [{"type": "Feature", "geometry": shapes.get(r.grid_id), "properties": r.as_dict()}
                for r in rows if shapes.get(r.grid_id)]
    return {"incident": incident.id, "closed": incident.closed_at is not None,
            "geojson": {"type": "FeatureCollection", "features": features},
            "grids": [r.as_dict() for r in rows],
            "tasks": [task_line(session, task) for task in open_tasks(session, incident.id, grid_ids)]}
