"""What the command centre draws: the grids on the map with their open and overdue tickets and the
month's three rates, buildings as points with their counts, each grid's rates beside the month
before, a 12-month trend, overdue tickets oldest first, and tickets by category.

The rates are core.tickets.rates' (the same figures /stats and the monthly report give), closed
months' kept by core.centre.kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.centre.kept import Keeper
from core.centre.listing import ACTIVE, Row, in_view, rows_of
from core.centre.scope import View
from core.models import Building, Category, Grid, Ticket
from core.tickets import rates
from core.tickets.rate_reports import month_of

RATES = ("response_rate", "solved_rate", "satisfaction_rate")


def previous_month(start: datetime) -> datetime:
    return start.replace(year=start.year - 1, month=12) if start.month == 1 else start.replace(month=start.month - 1)


def _counts(session: Session, view: View) -> tuple[dict[Any, tuple[int, int]], dict[Any, tuple[int, int]]]:
    """Open and overdue (open and flagged) tickets per grid and per building, in one pass."""
    overdue = func.sum(case((Ticket.overdue_at.is_not(None), 1), else_=0))
    rows = session.execute(select(Ticket.grid_id, Ticket.building_id, func.count(), overdue)
                           .where(in_view(view), Ticket.status.in_(ACTIVE)).group_by(Ticket.grid_id, Ticket.building_id))
    grids: dict[Any, tuple[int, int]] = {}
    buildings: dict[Any, tuple[int, int]] = {}
    for grid_id, building_id, n, late in rows:
        for into, key in ((grids, grid_id), (buildings, building_id)):
            was = into.get(key, (0, 0))
            into[key] = (was[0] + int(n), was[1] + int(late or 0))
    return grids, buildings


def _rate_values(fig: rates.Figures | None) -> dict[str, float | None]:
    return {name: (getattr(fig, name) if fig is not None else None) for name in RATES}


def grid_map(session: Session, view: View, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The map's data: a GeoJSON FeatureCollection of the person's grids (properties: counts and the
    month's rates) and the buildings with a position, each with its open and overdue counts."""
    grids = list(session.scalars(select(Grid).where(Grid.id.in_(sorted(view.grid_ids))).order_by(Grid.code)))
    counts, by_building = _counts(session, view)
    start, end = month_of(now, tz)
    month = rates.figures(session, start, end, [g.id for g in grids]) if grids else {}
    features = []
    for g in grids:
        n_open, n_overdue = counts.get(g.id, (0, 0))
        features.append({"type": "Feature", "geometry": g.polygon,
                         "properties": {"name": g.name, "code": g.code, "id": g.id, "open": n_open,
                                        "overdue": n_overdue, **_rate_values(month.get(g.id))}})
    buildings = [{"name": (b.estate or "") + (b.number or "") or b.address, "address": b.address,
                  "value": [b.lon, b.lat], "open": by_building.get(b.id, (0, 0))[0],
                  "overdue": by_building.get(b.id, (0, 0))[1]}
                 for b in session.scalars(select(Building).where(Building.grid_id.in_(sorted(view.grid_ids)),
                                                                 Building.lat.is_not(None), Building.lon.is_not(None))
                                          .order_by(Building.code))]
    return {"geojson": {"type": "FeatureCollection", "features": [f for f in features if f["geometry"]]},
            "grids": [f["properties"] for f in features], "buildings": buildings}


@dataclass
class GridRates:
    grid_id: int | None
    name: str
    this: rates.Figures
    before: rates.Figures


def month_table(session: Session, view: View, start: datetime, keeper: Keeper | None = None) -> list[GridRates]:
    """Each grid's figures for the month starting at `start` and for the month before; a total first."""
    keeper = keeper or Keeper()
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    grids = list(session.execute(select(Grid.id, Grid.name).where(Grid.id.in_(sorted(view.grid_ids)))
                                 .order_by(Grid.code)).tuples())
    ids = [gid for gid, _ in grids]
    this = keeper.figures(session, start, end, ids)
    before = keeper.figures(session, previous_month(start), start, ids)
    rows = [GridRates(gid, name, this.get(gid, rates.Figures()), before.get(gid, rates.Figures()))
            for gid, name in grids]
    return [GridRates(None, "", rates.total(this), rates.total(before)), *rows]


def trend(session: Session, view: View, tz: ZoneInfo, now: datetime, months: int = 12,
          keeper: Keeper | None = None) -> list[dict[str, Any]]:
    """The three rates of all the person's grids together, month by month, oldest first."""
    keeper = keeper or Keeper()
    start, _ = month_of(now, tz)
    starts = [start]
    for _ in range(months - 1):
        starts.insert(0, previous_month(starts[0]))
    ids = sorted(view.grid_ids)
    out = []
    for first in starts:
        end = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        fig = rates.total(keeper.figures(session, first, end, ids))
        out.append({"month": first.strftime("%Y-%m"), "filed": fig.filed, **_rate_values(fig)})
    return out


def overdue_oldest(session: Session, view: View, limit: int = 50) -> list[Row]:
    tickets = list(session.scalars(select(Ticket).where(in_view(view), Ticket.overdue_at.is_not(None),
                                                        Ticket.status.in_(ACTIVE))
                                   .order_by(Ticket.overdue_at, Ticket.created_at, Ticket.id).limit(limit)))
    return rows_of(session, tickets)


def by_category(session: Session, view: View, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """Tickets filed in [start, end) per category, most first."""
    names = dict(list(session.execute(select(Category.code, Category.name)).tuples()))
    rows = session.execute(select(Ticket.category_code, func.count()).where(
        in_view(view), Ticket.created_at >= start, Ticket.created_at < end).group_by(Ticket.category_code))
    return sorted(((names.get(code, code), int(n)) for code, n in rows), key=lambda pair: (-pair[1], pair[0]))
