"""Every step of an incident as an IncidentEvent row, written in the step's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import IncidentEvent, Person

KINDS = ("declared", "called", "answered", "roster", "task_posted", "task_taken", "task_done", "checked_in",
         "checked_out", "escalated", "closed")


def record(session: Session, incident_id: int, kind: str, at: datetime, *, actor: Person | None = None,
           grid_id: int | None = None, task_id: int | None = None, **detail: Any) -> IncidentEvent:
    if kind not in KINDS:
        raise ValueError(f"unknown incident event {kind!r}")
    row = IncidentEvent(incident_id=incident_id, kind=kind, actor_id=actor.id if actor is not None else None,
                        grid_id=grid_id, task_id=task_id, at=at, detail=detail)
    session.add(row)
    return row


def of(session: Session, incident_id: int) -> list[IncidentEvent]:
    """The incident's events, oldest first."""
    return list(session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                                .order_by(IncidentEvent.at, IncidentEvent.id)))
