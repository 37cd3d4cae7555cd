"""The counts Jining publishes for 三张清单 per community and street in a period: resources and
needs listed, projects started, projects completed (done or evaluated, finished in the period)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Community, Need, NeedStatus, Project, Resource, Street


@dataclass
class Counts:
    code: str
    name: str
    resources: int = 0
    needs: int = 0
    projects: int = 0
    completed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "resources": self.resources, "needs": self.needs,
                "projects": self.projects, "completed": self.completed}


def counts(session: Session, start: datetime, end: datetime,
           community_id: int | None = None) -> tuple[list[Counts], list[Counts]]:
    """(per community, per street), sorted by code. Needs count once listed (a pending or declined
    resident's need does not)."""
    communities = {c.id: c for c in session.scalars(select(Community))
                   if community_id is None or c.id == community_id}
    streets = {s.id: s for s in session.scalars(select(Street)) if s.id in {c.street_id for c in communities.values()}}
    per_c = {cid: Counts(c.code, c.name) for cid, c in communities.items()}
    per_s = {sid: Counts(s.code, s.name) for sid, s in streets.items()}

    def add(cid: int, field: str) -> None:
        if cid in per_c:
            for entry in (per_c[cid], per_s.get(communities[cid].street_id)):
                if entry is not None:
                    setattr(entry, field, getattr(entry, field) + 1)

    for cid in session.scalars(select(Resource.community_id).where(Resource.created_at >= start,
                                                                   Resource.created_at < end)):
        add(cid, "resources")
    for cid in session.scalars(select(Need.community_id).where(
            Need.created_at >= start, Need.created_at < end, Need.status.in_((NeedStatus.listed, NeedStatus.met)))):
        add(cid, "needs")
    for cid in session.scalars(select(Project.community_id).where(Project.created_at >= start,
                                                                  Project.created_at < end)):
        add(cid, "projects")
    for cid in session.scalars(select(Project.community_id).where(Project.done_at >= start, Project.done_at < end)):
        add(cid, "completed")
    return (sorted(per_c.values(), key=lambda e: e.code), sorted(per_s.values(), key=lambda e: e.code))
