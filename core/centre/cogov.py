"""The command centre's 共建共治 page: 双报到 members per grid with their service hours this month,
the open 三张清单 (resources, needs, projects by status), this month's 议事, and each branch's
organisational life — 出席 and 补学 apart (core.study.figures) — all within the person's view
(core.centre.scope).

The figures are the owners' own: hours from core.baodao.ledger, participation from
core.consult.figures, the item texts from core.lists. Members' names only where the permission
table gives `roster.view` for the grid, else their count; votes are never read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.access.permissions import allowed, scope_of_grid
from core.baodao.ledger import ledger
from core.baodao.registration import registered
from core.centre.scope import View
from core.consult import figures as consult_figures
from core.lists import entries, projects
from core.models import (
    Consultation,
    Grid,
    Need,
    NeedStatus,
    Person,
    Project,
    ProjectStatus,
    Resource,
)
from core.study.figures import BranchStudy, branch_figures

SHOWN = 50  # items of each list on the page; the counts are of all


@dataclass
class GridMembers:
    name: str
    members: int
    hours: float
    names: list[str] | None  # None: the person may not see this grid's roster


@dataclass
class Consult:
    grid: str
    question: str
    scope: str
    deadline: datetime
    participants: int | None = None
    eligible: int | None = None

    @property
    def rate(self) -> float | None:
        return self.participants / self.eligible if self.eligible and self.participants is not None else None


@dataclass
class Overview:
    members: list[GridMembers] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    resources_n: int = 0
    needs: list[str] = field(default_factory=list)
    needs_n: int = 0
    # status value -> (count, the newest SHOWN descriptions)
    projects: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    open_consultations: list[Consult] = field(default_factory=list)
    closed_consultations: list[Consult] = field(default_factory=list)
    participation_rate: float | None = None
    study: list[BranchStudy] = field(default_factory=list)


def _communities(session: Session, view: View) -> set[int]:
    grids = session.scalars(select(Grid.community_id).where(Grid.id.in_(sorted(view.grid_ids))))
    return set(view.community_ids) | {c for c in grids if c is not None}


def _members(session: Session, view: View, person: Person | None, start: datetime, end: datetime) -> list[GridMembers]:
    grids = list(session.scalars(select(Grid).where(Grid.id.in_(sorted(view.grid_ids))).order_by(Grid.code)))
    if not grids:
        return []
    communities = {g.community_id for g in grids}
    per_grid, _ = ledger(session, start, end, community_id=next(iter(communities)) if len(communities) == 1 else None)
    by_code = {entry.code: entry for entry in per_grid}
    names: dict[int, list[str]] = {}
    for row in registered(session, grid_ids=[g.id for g in grids], at=end):
        member = session.get(Person, row.person_id)
        names.setdefault(row.grid_id, []).append(member.display_name if member else "")
    out = []
    for g in grids:
        entry = by_code.get(g.code)
        may = allowed(session, person, "roster.view", scope_of_grid(session, g.id))
        out.append(GridMembers(g.name, entry.members if entry else 0, entry.hours if entry else 0.0,
                               names.get(g.id, []) if may else None))
    return out


def overview(session: Session, view: View, person: Person | None, start: datetime, end: datetime,
             today: date, *, now: datetime | None = None, tz: ZoneInfo | None = None) -> Overview:
    """The page's content for the month [start, end); `today` (local) decides which resources are
    open; with `now` and `tz`, the branches' study figures of that month too."""
    out = Overview(members=_members(session, view, person, start, end))
    if now is not None and tz is not None:
        out.study = branch_figures(session, view, now, tz)
    communities = sorted(_communities(session, view))
    grid_ids = sorted(view.grid_ids)

    resources = list(session.scalars(select(Resource).where(Resource.community_id.in_(communities),
                                                            Resource.available_to >= today)
                                      .order_by(Resource.id.desc())))
    out.resources_n, out.resources = len(resources), [entries.describe_resource(r) for r in resources[:SHOWN]]

    # a need is the grid's: a grid worker sees their grid's, an admin every grid's of the community
    in_view = or_(Need.grid_id.in_(grid_ids), Need.community_id.in_(sorted(view.community_ids)))
    needs = list(session.scalars(select(Need).where(in_view, Need.status.in_((NeedStatus.pending, NeedStatus.listed)))
                                 .order_by(Need.id.desc())))
    out.needs_n, out.needs = len(needs), [entries.describe_need(session, n) for n in needs[:SHOWN]]

    rows = list(session.scalars(select(Project).join(Need, Need.id == Project.need_id).where(in_view)
                                .order_by(Project.id.desc())))
    for status in ProjectStatus:
        of_status = [p for p in rows if p.status is status]
        out.projects[status.value] = (len(of_status), [projects.describe(session, p) for p in of_status[:SHOWN]])

    grid_names = dict(session.execute(select(Grid.id, Grid.name).where(Grid.id.in_(grid_ids))).tuples().all())
    for c in session.scalars(select(Consultation).where(Consultation.grid_id.in_(grid_ids),
                                                        Consultation.closed_at.is_(None))
                             .order_by(Consultation.deadline)):
        out.open_consultations.append(Consult(grid_names.get(c.grid_id, ""), c.question, c.scope_label, c.deadline))
    # closed this month: the ones core.consult.figures counts as held in the month
    for c in session.scalars(select(Consultation).where(Consultation.grid_id.in_(grid_ids),
                                                        Consultation.closed_at.is_not(None),
                                                        Consultation.deadline >= start, Consultation.deadline < end)
                             .order_by(Consultation.deadline)):
        out.closed_consultations.append(Consult(grid_names.get(c.grid_id, ""), c.question, c.scope_label, c.deadline,
                                                c.participants or 0, c.eligible or 0))
    out.participation_rate = consult_figures.figures(session, start, end, grid_ids).participation_rate
    return out
