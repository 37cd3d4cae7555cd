"""The scheduler leader's mobilisation round (`leader_round`, from core.scheduler.DutyScheduler.sync).

* Rosters: ROSTER minutes after the declaration, every grid whose leaders have not had their
  作战单元 roster yet gets it (it went earlier if everyone there answered).
* Escalation (吹哨): a grid of the area with nobody on site ESCALATE minutes after the declaration
  goes to the community's admins, after twice that to the street's admins; once each per grid
  (the IncidentGrid row is claimed before anything is queued, and the messages carry dedupe keys),
  grouped into one message per admin and round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.messages import t
from core.messaging import outbox
from core.mobilise import area, events, roll
from core.mobilise.declare import kind_label
from core.mobilise.people import community_admins, street_admins
from core.models import Grid, Incident, IncidentGrid

ESCALATION_KIND = "mobilise.escalation"
LEVELS = ("community", "street")


@dataclass(frozen=True)
class Timing:
    escalate_minutes: int = 15  # X: to the community after X, to the street after 2X
    roster_minutes: int = 5  # the rosters go this long after the declaration at the latest

    @classmethod
    def of(cls, settings: Any) -> Timing:
        return cls(settings.mobilise_escalate_minutes, settings.mobilise_roster_minutes)


def rosters(session: Session, now: datetime, tz: ZoneInfo, timing: Timing) -> int:
    sent = 0
    for incident in area.active(session):
        if incident.declared_at > now - timedelta(minutes=timing.roster_minutes):
            continue
        for grid_id in session.scalars(select(IncidentGrid.grid_id).where(
                IncidentGrid.incident_id == incident.id, IncidentGrid.roster_sent_at.is_(None)).order_by(IncidentGrid.id)):
            sent += roll.send_roster(session, incident, grid_id, now, tz)
    return sent


def _claim(session: Session, incident: Incident, grid_id: int, level: str, now: datetime) -> bool:
    column = IncidentGrid.escalated_community_at if level == "community" else IncidentGrid.escalated_street_at
    done = session.execute(update(IncidentGrid).where(
        IncidentGrid.incident_id == incident.id, IncidentGrid.grid_id == grid_id, column.is_(None))
        .values({column.key: now}).execution_options(synchronize_session=False))
    return bool(getattr(done, "rowcount", 0))


def escalate(session: Session, now: datetime, timing: Timing) -> int:
    """Escalate the unmanned grids that are due; how many grid escalations were made."""
    made = 0
    for incident in area.active(session):
        manned = roll.on_site_grids(session, incident.id)
        for factor, level in enumerate(LEVELS, start=1):
            minutes = timing.escalate_minutes * factor
            if incident.declared_at > now - timedelta(minutes=minutes):
                continue
            column = IncidentGrid.escalated_community_at if level == "community" else IncidentGrid.escalated_street_at
            due = [g for g in session.scalars(select(Grid).join(IncidentGrid, IncidentGrid.grid_id == Grid.id).where(
                IncidentGrid.incident_id == incident.id, column.is_(None)).order_by(Grid.code))
                if g.id not in manned]
            claimed = [g for g in due if _claim(session, incident, g.id, level, now)]
            made += len(claimed)
            for grid in claimed:
                events.record(session, incident.id, "escalated", now, grid_id=grid.id, to=level, minutes=minutes)
            _tell(session, incident, claimed, level, minutes, now)
    return made


def _tell(session: Session, incident: Incident, grids: list[Grid], level: str, minutes: int, now: datetime) -> None:
    """One message per admin: the grids of theirs that have nobody on site."""
    by_admin: dict[int, tuple[int, list[Grid]]] = {}
    groups: dict[int, list[Grid]] = defaultdict(list)
    for grid in grids:
        groups[grid.community_id if level == "community" else incident.street_id].append(grid)
    for owner, owned in groups.items():
        admins = community_admins(session, owner) if level == "community" else street_admins(session, owner)
        for admin in admins:
            assert admin.telegram_id is not None
            chat, listed = by_admin.setdefault(admin.id, (admin.telegram_id, []))
            listed.extend(owned)
    for admin_id, (chat_id, owned) in by_admin.items():
        codes = "-".join(str(g.id) for g in owned)
        outbox.enqueue(session, dedupe_key=f"mobilise:escalate:{incident.id}:{level}:{admin_id}:{codes}",
                       kind=ESCALATION_KIND, chat_id=chat_id,
                       payload={"text": t(f"mobilise.escalation_{level}", id=incident.id, kind=kind_label(incident.kind),
                                          area=area.label(session, incident), minutes=minutes,
                                          grids="、".join(g.name for g in owned))})


def run(session: Session, now: datetime, tz: ZoneInfo, timing: Timing) -> dict[str, int]:
    return {"rosters": rosters(session, now, tz, timing), "escalated": escalate(session, now, timing)}


def leader_round(factory: sessionmaker[Session], now: datetime, tz: ZoneInfo, timing: Timing) -> dict[str, int]:
    """The round in its own transaction (the leader's sync calls it)."""
    with session_scope(factory) as session:
        return run(session, now, tz, timing)
