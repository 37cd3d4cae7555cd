"""The rates in chat: /stats for the month so far, and the report each secretary and admin gets
on the 1st for the month before (core.tickets.rates; definitions in docs/rates.md).

A secretary sees their grid beside the community's average; a community admin every grid of
the community, and a street admin every community of the street, ranked by 满意率 among the grids
with at least `min_tickets` tickets filed (ranking on a handful of tickets is unfair).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import allowed, branches_for, scope_of_community
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import Branch, Community, Grid, OutboxMessage, Person, Role, RoleGrant, TicketEvent
from core.tickets import rates

ACTION = "stats.view"
KIND = "notice"


def month_of(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first day, first day of the next month) of the local month `at` falls in."""
    local = at.astimezone(tz)
    first = datetime(local.year, local.month, 1, tzinfo=tz)
    return first, first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)


def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "—"


def _line(name: str, fig: rates.Figures) -> str:
    return t("stats.line", name=name, filed=fig.filed, response=_pct(fig.response_rate),
             resolve=_pct(fig.resolve_rate), solved=_pct(fig.solved_rate),
             satisfaction=_pct(fig.satisfaction_rate),
             overdue=t("stats.overdue", n=fig.overdue) if fig.overdue else "")


def _communities(session: Session, person: Person) -> list[Community]:
    """The communities whose every grid the person may see: as community or street admin."""
    return [c for c in session.scalars(select(Community).order_by(Community.code))
            if allowed(session, person, ACTION, scope_of_community(c.id))]


def community_text(session: Session, community: Community, start: datetime, end: datetime,
                   min_tickets: int) -> str:
    grids = list(session.scalars(select(Grid).where(Grid.community_id == community.id).order_by(Grid.code)))
    per_grid = rates.figures(session, start, end, [g.id for g in grids])
    lines = [_line(community.name, rates.total(per_grid))]
    lines += [_line(g.name, per_grid.get(g.id, rates.Figures())) for g in grids]
    ranked = sorted(((per_grid[g.id].satisfaction_rate or 0.0, g.name) for g in grids
                     if g.id in per_grid and per_grid[g.id].filed >= min_tickets), reverse=True)
    if ranked:
        lines.append(t("stats.rank_header", n=min_tickets))
        lines += [t("stats.rank_line", rank=i, name=name, satisfaction=_pct(rate))
                  for i, (rate, name) in enumerate(ranked, 1)]
    else:
        lines.append(t("stats.no_rank", n=min_tickets))
    return "\n".join(lines)


def branch_text(session: Session, branch: Branch, start: datetime, end: datetime) -> str:
    grid = session.get(Grid, branch.grid_id)
    assert grid is not None
    community = session.get(Community, grid.community_id)
    assert community is not None
    grid_ids = list(session.scalars(select(Grid.id).where(Grid.community_id == community.id)))
    per_grid = rates.figures(session, start, end, grid_ids)
    return "\n".join([_line(grid.name, per_grid.get(grid.id, rates.Figures())),
                      _line(t("stats.community_average", community=community.name), rates.total(per_grid))])


def report_text(session: Session, person: Person | None, start: datetime, end: datetime, tz: ZoneInfo,
                *, min_tickets: int, heading: str = "stats.header") -> str | None:
    """What `person` may see of [start, end), or None when they may see nothing."""
    if person is None:
        return None
    parts = [community_text(session, c, start, end, min_tickets) for c in _communities(session, person)]
    if not parts:
        parts = [branch_text(session, b, start, end) for b in branches_for(session, person, ACTION)]
    if not parts:
        return None
    label = start.astimezone(tz).strftime("%Y-%m")
    return "\n\n".join([t(heading, month=label), *parts, t("stats.definitions")])


def monthly_sent(session: Session, now: datetime, tz: ZoneInfo) -> bool:
    """Has last month's report gone out (to anyone)?"""
    label = month_of(month_of(now, tz)[0] - timedelta(days=1), tz)[0].strftime("%Y-%m")
    return session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.dedupe_key.startswith(f"stats-month:{label}:")).limit(1)) is not None


def send_monthly(session: Session, now: datetime, tz: ZoneInfo, *, min_tickets: int) -> int:
    """On any day of a month, the report for the month before to every secretary and admin,
    once (the dedupe key names the month); how many were queued now."""
    this_month, _ = month_of(now, tz)
    start, end = month_of(this_month - timedelta(days=1), tz)
    label = start.strftime("%Y-%m")
    if session.scalar(select(TicketEvent.id).where(TicketEvent.at >= start, TicketEvent.at < end).limit(1)) is None:
        return 0  # nothing happened that month (a new installation): nothing to report
    queued = 0
    readers = session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
        RoleGrant.role.in_((Role.secretary, Role.community_admin, Role.street_admin)),
        Person.telegram_id.is_not(None)).distinct().order_by(Person.id))
    secretaries = session.scalars(select(Person).join(Branch, Branch.secretary_id == Person.id)
                                  .where(Person.telegram_id.is_not(None)).order_by(Person.id))
    for person in dict.fromkeys([*readers, *secretaries]):
        text = report_text(session, person, start, end, tz, min_tickets=min_tickets, heading="stats.monthly_header")
        if text is not None and person.telegram_id is not None:
            queued += enqueue(session, dedupe_key=f"stats-month:{label}:{person.telegram_id}", kind=KIND,
                              chat_id=person.telegram_id, payload={"text": text})
    return queued
