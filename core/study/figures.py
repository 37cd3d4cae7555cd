"""The command centre's study figures: per branch in the person's view, this month's sessions
with 出席 (checked in) and 补学 counted apart, and how many have had neither for 30 days.

The month's tally is the one /report gives (core.duties.reports.summarise); the 30-day count is
core.study.catchup.overdue's. Counts only: the names are in the secretary's /report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.centre.scope import View
from core.duties.reports import summarise
from core.models import Branch
from core.study.catchup import overdue


@dataclass(frozen=True)
class BranchStudy:
    branch: str
    sessions: int
    expected: int
    attended: int
    caught_up: int
    neither: int
    overdue: int

    @property
    def attended_rate(self) -> float | None:
        return self.attended / self.expected if self.expected else None

    @property
    def caught_up_rate(self) -> float | None:
        return self.caught_up / self.expected if self.expected else None


def branch_figures(session: Session, view: View, now: datetime, tz: ZoneInfo) -> list[BranchStudy]:
    """One row per branch of the grids in `view`, by code, for the local month of `now`."""
    local = now.astimezone(tz)
    rows = []
    for branch in session.scalars(select(Branch).where(Branch.grid_id.in_(sorted(view.grid_ids))).order_by(Branch.code)):
        month = summarise(session, branch, local.year, local.month, now=now, tz=tz)
        total = month.total
        rows.append(BranchStudy(branch.name, len(month.occurrences), total.expected, total.attended, total.caught_up,
                                total.neither, len(overdue(session, branch.id, now))))
    return rows
