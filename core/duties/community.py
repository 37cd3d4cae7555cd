"""/report for a community admin: this month's attendance across the community's branches, one
line per branch and the community's total (core.duties.reports.monthly_summary for each branch),
补学 counted apart from 出席."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import allowed, scope_of_branch
from core.duties.reports import monthly_summary
from core.messages import t
from core.models import Branch, Community, Grid, Person, Role, utcnow


def communities_of(session: Session, person: Person | None) -> list[Community]:
    """The communities `person` administers (a community_admin grant there)."""
    if person is None:
        return []
    ids = sorted({g.community_id for g in person.grants
                  if g.role is Role.community_admin and g.community_id is not None})
    return [c for c in (session.get(Community, i) for i in ids) if c is not None]


def _rate(attended: int, expected: int) -> str:
    return f"{attended / expected:.0%}" if expected else t("duty.none")


def community_text(session: Session, person: Person | None, *, tz: ZoneInfo,
                   now: datetime | None = None) -> str | None:
    """The overview for each community `person` administers; None when they administer none."""
    today = (now or utcnow()).astimezone(tz)
    parts = []
    for community in communities_of(session, person):
        lines = [t("report.community_header", community=community.name, year=today.year, month=today.month)]
        events = expected = attended = leave = absent = studied = 0
        for branch in session.scalars(select(Branch).join(Grid, Grid.id == Branch.grid_id)
                                      .where(Grid.community_id == community.id).order_by(Branch.code)):
            if not allowed(session, person, "event.report", scope_of_branch(session, branch)):
                continue
            summary = monthly_summary(session, branch.id, today.year, today.month, person, now=now, tz=tz)
            total = summary.total
            lines.append(t("report.community_branch", branch=branch.name, events=len(summary.occurrences),
                           expected=total.expected, attended=total.attended, leave=total.leave,
                           absent=total.absent, rate=_rate(total.attended, total.expected))
                         + t("study.community_caught_up", caught_up=total.caught_up))
            events += len(summary.occurrences)
            studied += total.caught_up
            expected, attended = expected + total.expected, attended + total.attended
            leave, absent = leave + total.leave, absent + total.absent
        lines.append(t("report.community_total", events=events, expected=expected, attended=attended,
                       leave=leave, absent=absent, rate=_rate(attended, expected))
                     + t("study.community_caught_up", caught_up=studied))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else None
