"""附近的党组织 / /dangzuzhi: the party organisations and 党群服务中心 nearest a place.

The place is a shared location, or a name: a registry organisation, centre or unit, a building or
landmark the router knows (core.places.router), or a community. Distances are great-circle
(haversine) over the registry's points; entries without a point are never listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import t
from core.models import (
    Building,
    Community,
    Grid,
    Landmark,
    PartyOrganisation,
    ServiceCentre,
    WorkUnit,
)
from core.places.router import Router, RouteStatus
from core.text import normalise

EARTH_RADIUS_M = 6_371_000.0
ORGANISATIONS, CENTRES = 3, 2  # how many of each an answer lists


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    label: str


@dataclass(frozen=True)
class Found:
    kind: str  # "organisation" | "centre"
    name: str
    address: str | None
    hours: str | None
    phone: str | None
    metres: float


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _pointed(rows: list, query: str) -> Place | None:
    for row in rows:
        name = normalise(row.name)
        if row.lat is not None and row.lon is not None and (query == name or (len(query) >= 2 and query in name)):
            return Place(row.lat, row.lon, row.name)
    return None


def locate(session: Session, router: Router, text: str) -> Place | None:
    """The point a place name stands for, or None when nothing in the registry matches it."""
    query = normalise(text)
    if not query:
        return None
    for model in (ServiceCentre, PartyOrganisation, WorkUnit):
        found = _pointed(list(session.scalars(select(model).order_by(model.code))), query)
        if found is not None:
            return found
    result = router.by_text(text)
    if result.status in (RouteStatus.matched, RouteStatus.ambiguous):
        # 南门 is in every estate: the candidates of the estate the words name come first
        estate = (router.estate_named(text) or "").removesuffix("小区")
        ordered = sorted(result.candidates, key=lambda c: not (estate and estate in normalise(c.label)))
        for candidate in ordered:
            point: Any = None
            if candidate.kind == "building":
                point = session.execute(select(Building.lat, Building.lon).where(Building.code == candidate.code)).first()
            elif candidate.kind == "landmark":
                point = session.execute(select(Landmark.lat, Landmark.lon).where(Landmark.code == candidate.code)).first()
            if point is not None and point[0] is not None and point[1] is not None:
                return Place(point[0], point[1], candidate.label)
    for community in session.scalars(select(Community).order_by(Community.code)):
        names = {normalise(community.name), normalise(community.name).removesuffix("社区")}
        if any(len(n) >= 2 and n in query for n in names):
            points = session.execute(select(Building.lat, Building.lon).join(Grid, Grid.id == Building.grid_id)
                                     .where(Grid.community_id == community.id, Building.lat.is_not(None))).all()
            if points:
                return Place(sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points),
                             community.name)
    return None


def nearest(session: Session, lat: float, lon: float) -> list[Found]:
    """The nearest organisations (ORGANISATIONS) and centres (CENTRES), nearest first within each."""
    def ranked(rows: list[PartyOrganisation] | list[ServiceCentre], kind: str, limit: int) -> list[Found]:
        found = [Found(kind, r.name, r.address, r.hours, r.phone, haversine_m(lat, lon, r.lat, r.lon))
                 for r in rows if r.lat is not None and r.lon is not None]
        return sorted(found, key=lambda f: (f.metres, f.name))[:limit]
    return (ranked(list(session.scalars(select(PartyOrganisation))), "organisation", ORGANISATIONS)
            + ranked(list(session.scalars(select(ServiceCentre))), "centre", CENTRES))


def distance_text(metres: float) -> str:
    return f"{round(metres / 10) * 10:.0f}米" if metres < 1000 else f"{metres / 1000:.1f}公里"


def answer(found: list[Found], place_label: str | None = None) -> str:
    """The reply: each entry's name, distance, address, hours and phone."""
    if not found:
        return t("nav.none")
    lines = [t("nav.header_near", place=place_label) if place_label else t("nav.header")]
    for kind in ("organisation", "centre"):
        entries = [f for f in found if f.kind == kind]
        if not entries:
            continue
        lines.append(t(f"nav.section.{kind}"))
        for f in entries:
            lines.append(t("nav.entry", name=f.name, distance=distance_text(f.metres),
                           address=f.address or t("nav.unknown"), hours=f.hours or t("nav.unknown"),
                           phone=f.phone or t("nav.unknown")))
    return "\n".join(lines)
