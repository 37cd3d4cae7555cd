"""Which grid a WGS-84 point lies in, from the stored grid polygons (one query, no cache).

The chat's routing of a shared location goes through core.places.router (an index of every grid,
rebuilt after an import); this is the small question a check-in asks: is this person, here, in
that community's grid? Polygons and points are both WGS-84 (a GCJ-02 registry is converted on
import, core.registry.coordinates). A point on the border of two grids lies in both: `grids_at`
gives both, `grid_at` the first by code.
"""

from __future__ import annotations

from shapely.geometry import Point, shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Grid


def grids_at(session: Session, community_id: int | None, lon: float, lat: float) -> list[Grid]:
    """The grids (of `community_id`, or of every community) whose polygon covers the point, by code."""
    query = select(Grid).order_by(Grid.code)  # a grid without a polygon holds no point
    if community_id is not None:
        query = query.where(Grid.community_id == community_id)
    point = Point(lon, lat)
    return [grid for grid in session.scalars(query) if grid.polygon and shape(grid.polygon).covers(point)]


def grid_at(session: Session, community_id: int | None, lon: float, lat: float) -> Grid | None:
    """The grid the point lies in (of `community_id` when given), or None; on a shared border the
    first by code."""
    found = grids_at(session, community_id, lon, lat)
    return found[0] if found else None
