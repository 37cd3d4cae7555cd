"""Closing an incident and its report.

`close`: the commander only, once (a second close is refused with when it ended). Everyone still on
site is checked out at the close and told their hours. The report, per grid: people called,
answered (到 / 稍后到 / 不能到), on site (checked in at least once), hours per person and in all,
tasks done of posted — in chat, as CSV (`gridbot mobilise report <id> --csv`, the command centre),
and as JSON.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import outbox
from core.mobilise import area, events, roll
from core.mobilise.checkins import duration_text
from core.mobilise.declare import kind_label
from core.models import Incident, IncidentCheckIn, Person

CLOSED_KIND = "mobilise.closed"
CSV_COLUMNS = ("incident", "grid_code", "grid", "person", "called", "answered", "coming", "late", "cannot",
               "on_site", "hours", "tasks", "tasks_done")


@dataclass
class GridReport:
    code: str
    name: str
    called: int = 0
    answered: int = 0
    coming: int = 0
    late: int = 0
    cannot: int = 0
    on_site: int = 0
    hours: float = 0.0
    tasks: int = 0
    tasks_done: int = 0
    people: list[tuple[str, float]] = field(default_factory=list)  # (name, hours) of those on site

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "called": self.called, "answered": self.answered,
                "coming": self.coming, "late": self.late, "cannot": self.cannot, "on_site": self.on_site,
                "hours": round(self.hours, 2), "tasks": self.tasks, "tasks_done": self.tasks_done,
                "people": [{"name": n, "hours": round(h, 2)} for n, h in self.people]}


def check_close(session: Session, person: Person | None, incident_id: int, tz: ZoneInfo) -> Incident:
    """The incident if `person` may close it now: its commander, not closed yet."""
    incident = area.find(session, incident_id)
    area.require_command(session, person, incident)
    if incident.closed_at is not None:
        raise NotAllowed(t("mobilise.deny.closed_already", at=incident.closed_at.astimezone(tz).strftime("%m-%d %H:%M")))
    return incident


def close(session: Session, person: Person | None, incident_id: int, *, now: datetime, tz: ZoneInfo) -> Incident:
    incident = check_close(session, person, incident_id, tz)
    assert person is not None
    incident.closed_at, incident.closed_by_id = now, person.id
    for row, member in session.execute(
            select(IncidentCheckIn, Person).join(Person, Person.id == IncidentCheckIn.person_id)
            .where(IncidentCheckIn.incident_id == incident.id, IncidentCheckIn.checked_out_at.is_(None))
            .order_by(IncidentCheckIn.id)).tuples():
        row.checked_out_at = now
        seconds = (now - row.checked_in_at).total_seconds()
        events.record(session, incident.id, "checked_out", now, actor=member, grid_id=row.grid_id,
                      task_id=row.task_id, minutes=int(seconds // 60), by="close")
        if member.telegram_id is not None:
            outbox.enqueue(session, dedupe_key=f"mobilise:closed:{incident.id}:{row.id}", kind=CLOSED_KIND,
                           chat_id=member.telegram_id,
                           payload={"text": t("mobilise.closed_notice", id=incident.id, kind=kind_label(incident.kind),
                                              duration=duration_text(seconds))})
    events.record(session, incident.id, "closed", now, actor=person)
    audit.record(session, person, "mobilise.close", f"incident:{incident.id}", at=now)
    session.flush()
    return incident


def _until(incident: Incident, now: datetime) -> datetime:
    return incident.closed_at or now


def figures(session: Session, incident: Incident, grid_ids: list[int] | None, now: datetime) -> list[GridReport]:
    """The report's rows, one per grid (only `grid_ids`, when given), by grid code."""
    live = {r.grid_id: r for r in roll.figures(session, incident.id, grid_ids)}
    rows = {gid: GridReport(r.code, r.name, r.called, r.answered, r.coming, r.late, r.cannot, 0, 0.0, r.tasks,
                            r.tasks_done) for gid, r in live.items()}
    until = _until(incident, now)
    seconds: dict[tuple[int, int], float] = defaultdict(float)
    for row in session.scalars(select(IncidentCheckIn).where(IncidentCheckIn.incident_id == incident.id)
                               .order_by(IncidentCheckIn.id)):
        if row.grid_id in rows:
            seconds[(row.grid_id, row.person_id)] += ((row.checked_out_at or until) - row.checked_in_at).total_seconds()
    names = dict(session.execute(select(Person.id, Person.display_name).where(
        Person.id.in_({p for _, p in seconds}))).tuples().all()) if seconds else {}
    for (grid_id, person_id), secs in sorted(seconds.items()):
        report = rows[grid_id]
        report.on_site += 1
        report.hours += secs / 3600
        report.people.append((names.get(person_id, ""), secs / 3600))
    for report in rows.values():
        report.people.sort(key=lambda p: (-p[1], p[0]))
    return list(rows.values())


def total(rows: list[GridReport]) -> GridReport:
    out = GridReport("", t("mobilise.report_total_name"))
    for r in rows:
        for key in ("called", "answered", "coming", "late", "cannot", "on_site", "hours", "tasks", "tasks_done"):
            setattr(out, key, getattr(out, key) + getattr(r, key))
    return out


def hours_text(hours: float) -> str:
    return t("mobilise.hours", hours=f"{hours:.1f}")


def report_text(session: Session, incident: Incident, grid_ids: list[int] | None, now: datetime,
                tz: ZoneInfo) -> str:
    rows = figures(session, incident, grid_ids, now)
    until = _until(incident, now)
    lines = [t("mobilise.report_header", id=incident.id, kind=kind_label(incident.kind),
               area=area.label(session, incident), start=incident.declared_at.astimezone(tz).strftime("%m-%d %H:%M"),
               end=until.astimezone(tz).strftime("%m-%d %H:%M"),
               duration=duration_text((until - incident.declared_at).total_seconds()))]
    for r in rows:
        lines.append(t("mobilise.report_grid", name=r.name, called=r.called, answered=r.answered, coming=r.coming,
                       late=r.late, cannot=r.cannot, on_site=r.on_site, hours=hours_text(r.hours),
                       done=r.tasks_done, tasks=r.tasks))
        if r.people:
            lines.append(t("mobilise.report_people", people="、".join(
                f"{name} {hours_text(hours)}" for name, hours in r.people)))
    all_ = total(rows)
    lines.append(t("mobilise.report_total", called=all_.called, answered=all_.answered, on_site=all_.on_site,
                   hours=hours_text(all_.hours), done=all_.tasks_done, tasks=all_.tasks))
    lines.append(t("mobilise.report_export", id=incident.id))
    return "\n".join(lines)


def csv_rows(session: Session, incident: Incident, grid_ids: list[int] | None, now: datetime, *,
             names: bool = True) -> list[list[object]]:
    """The report as rows under CSV_COLUMNS: one per grid, then (with `names`) one per person on site,
    then the total."""
    rows = figures(session, incident, grid_ids, now)
    out: list[list[object]] = []
    for r in rows:
        out.append([incident.id, r.code, r.name, "", r.called, r.answered, r.coming, r.late, r.cannot, r.on_site,
                    f"{r.hours:.2f}", r.tasks, r.tasks_done])
        if names:
            out += [[incident.id, r.code, r.name, name, "", "", "", "", "", 1, f"{hours:.2f}", "", ""]
                    for name, hours in r.people]
    whole = total(rows)
    out.append([incident.id, "", whole.name, "", whole.called, whole.answered, whole.coming, whole.late,
                whole.cannot, whole.on_site, f"{whole.hours:.2f}", whole.tasks, whole.tasks_done])
    return out


def csv_text(session: Session, incident: Incident, grid_ids: list[int] | None, now: datetime, *,
             names: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(session, incident, grid_ids, now, names=names))
    return buffer.getvalue()


def as_dict(session: Session, incident: Incident, grid_ids: list[int] | None, now: datetime) -> dict[str, Any]:
    rows = figures(session, incident, grid_ids, now)
    return {"incident": incident.id, "kind": incident.kind.value, "area": area.label(session, incident),
            "declared_at": incident.declared_at.isoformat(), "closed_at":
                incident.closed_at.isoformat() if incident.closed_at else None,
            "grids": [r.as_dict() for r in rows], "total": total(rows).as_dict()}

