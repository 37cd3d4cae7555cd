"""`gridbot stats` figures of 议事: consultations held (closed) in a period and their participation
rate (participants / verified residents in scope at the deadline), per grid and in total."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Consultation, Proposal


@dataclass
class ConsultFigures:
    held: int = 0
    eligible: int = 0
    participants: int = 0
    proposals: int = 0
    on_agenda: int = 0

    @property
    def participation_rate(self) -> float | None:
        return self.participants / self.eligible if self.eligible else None

    def as_dict(self) -> dict[str, object]:
        return {"held": self.held, "eligible": self.eligible, "participants": self.participants,
                "participation_rate": self.participation_rate, "proposals": self.proposals,
                "on_agenda": self.on_agenda}


def figures(session: Session, start: datetime, end: datetime, grid_ids: list[int] | None = None) -> ConsultFigures:
    """Consultations whose deadline fell in [start, end) and were closed; proposals made then."""
    query = select(Consultation).where(Consultation.closed_at.is_not(None), Consultation.deadline >= start,
                                       Consultation.deadline < end)
    proposals = select(Proposal).where(Proposal.at >= start, Proposal.at < end)
    if grid_ids is not None:
        query = query.where(Consultation.grid_id.in_(grid_ids))
        proposals = proposals.where(Proposal.grid_id.in_(grid_ids))
    out = ConsultFigures()
    for c in session.scalars(query):
        out.held += 1
        out.eligible += c.eligible or 0
        out.participants += c.participants or 0
    for p in session.scalars(proposals):
        out.proposals += 1
        out.on_agenda += p.agenda_at is not None
    return out
