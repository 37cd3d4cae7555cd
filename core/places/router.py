"""Routing: which grid a report belongs to.

Three ways in, one answer shape (`RouteResult`):

* a known building → its grid;
* a latitude/longitude → the grid whose polygon covers it (shapely STRtree,
  so lookups stay fast with thousands of grids; a point on a shared border
  is ambiguous, a point outside every grid gets the nearest grids as
  candidates);
* free Chinese text ("3号楼", "5栋2单元", "和平小区东门", traditional too) →
  ranked candidate buildings or landmarks → grid.

Unknown or ambiguous input returns candidates; the router never guesses
silently. Routing is data: the index is built from the registry tables and
rebuilt after an import (`RouterCache`).
"""

from __future__ import annotations

import enum
import math
import re
import threading
import time
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import read_scope
from core.models import Building, Community, Grid, Landmark
from core.text import normalise


class RouteStatus(str, enum.Enum):
    matched = "matched"
    ambiguous = "ambiguous"
    none = "none"


@dataclass(frozen=True)
class Candidate:
    kind: str  # "building" | "landmark" | "grid"
    code: str
    label: str
    grid_code: str
    community_code: str
    score: float


@dataclass
class RouteResult:
    status: RouteStatus
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def grid_code(self) -> str | None:
        return self.candidates[0].grid_code if self.status is RouteStatus.matched else None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.status is RouteStatus.matched else None

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "grid": self.grid_code,
            "candidates": [c.__dict__ for c in self.candidates],
        }


@dataclass(frozen=True)
class _GridEntry:
    code: str
    name: str
    community_code: str
    geometry: BaseGeometry | None


@dataclass(frozen=True)
class _PlaceEntry:
    kind: str
    code: str
    label: str
    grid_code: str
    community_code: str
    number: str | None  # building number as text, e.g. "3"
    estate: str  # normalised estate / community qualifier
    names: tuple[str, ...]  # normalised names and aliases


# Building number: 3号楼, 3栋, 3幢, 3座, 3#, 3号院; "3楼" alone is a floor, not a building.
_BUILDING_RE = re.compile(r"(\d+)\s*(?:号楼|号院|栋|幢|座|#楼|#)")
_UNIT_RE = re.compile(r"(\d+)\s*单元")
_ROOM_RE = re.compile(r"(\d{3,4})\s*(?:室|号)?")
_FILLERS = re.compile(
    r"(我家|我们|这边|那边|那儿|这儿|那里|这里|附近|旁边|边上|跟前|楼下|楼上|在|的|就|是|呢|啊|呀|吧|了|这个|那个|,|，|。|\s)"
)
_ESTATE_ENDING = re.compile(r"(?:小区|社区|花园|家园|新村|公寓)$")
_ESTATE_STRIP = re.compile(r"\d+\s*(?:号楼|号院|栋|幢|座|#)\s*$")

MATCH_SCORE = 80.0  # a candidate at or above this may be chosen
CLEAR_LEAD = 10.0  # …if it leads the runner-up by at least this much
COMMUNITY_PENALTY = 15.0  # a community name is a weaker qualifier than an estate name
CANDIDATE_FLOOR = 55.0  # below this a text candidate is not worth offering
NEAREST_GRID_DEGREES = 0.005  # ~500 m: how far outside a grid we still suggest it


def estate_of(address: str) -> str:
    """和平里小区3号楼 → 和平里小区 (the address without its building number)."""
    return _ESTATE_STRIP.sub("", normalise(address)).strip()


def _similarity(query: str, target: str) -> float:
    if not query or not target:
        return 0.0
    if query == target:
        return 100.0
    score = fuzz.ratio(query, target)
    shorter, longer = sorted((query, target), key=len)
    if len(shorter) >= 2 and shorter in longer:
        # Containment is strong evidence, weighted by how much it covers.
        score = max(score, 70.0 + 30.0 * len(shorter) / len(longer))
    return float(score)


class Router:
    def __init__(self, grids: list[_GridEntry], places: list[_PlaceEntry]) -> None:
        self._grids = {g.code: g for g in grids}
        self._places = places
        self._buildings = {p.code: p for p in places if p.kind == "building"}
        self._shaped = [g for g in grids if g.geometry is not None]
        self._tree = STRtree([g.geometry for g in self._shaped]) if self._shaped else None

    # -- construction -----------------------------------------------------
    @classmethod
    def from_session(cls, session: Session) -> Router:
        community_codes: dict[int, str] = {
            row.id: row.code for row in session.execute(select(Community.id, Community.code))
        }
        community_names: dict[str, str] = {
            row.code: row.name for row in session.execute(select(Community.code, Community.name))
        }
        grids: list[_GridEntry] = []
        grid_codes: dict[int, tuple[str, str]] = {}
        for grid in session.scalars(select(Grid)):
            ccode = community_codes[grid.community_id]
            grid_codes[grid.id] = (grid.code, ccode)
            geometry = shape(grid.polygon) if grid.polygon else None
            grids.append(_GridEntry(grid.code, grid.name, ccode, geometry))
        places: list[_PlaceEntry] = []
        for b in session.scalars(select(Building)):
            gcode, ccode = grid_codes[b.grid_id]
            estate = normalise(b.estate) if b.estate else estate_of(b.address)
            names = {normalise(b.address), *(normalise(a) for a in b.aliases)}
            places.append(
                _PlaceEntry("building", b.code, b.address, gcode, ccode, b.number,
                            estate + "|" + normalise(community_names[ccode]), tuple(sorted(names)))
            )
        for lm in session.scalars(select(Landmark)):
            gcode, ccode = grid_codes[lm.grid_id]
            names = {normalise(lm.name), *(normalise(a) for a in lm.aliases)}
            places.append(
                _PlaceEntry("landmark", lm.code, lm.name, gcode, ccode, None,
                            normalise(community_names[ccode]), tuple(sorted(names)))
            )
        return cls(grids, places)

    # -- by building ------------------------------------------------------
    def by_building(self, building_code: str) -> RouteResult:
        entry = self._buildings.get(building_code)
        if entry is None:
            return RouteResult(RouteStatus.none)
        return RouteResult(RouteStatus.matched, [self._candidate(entry, 100.0)])

    def by_code(self, code: str) -> RouteResult:
        """A building, landmark or grid named by its registry code (e.g. a button a resident pressed)."""
        for p in self._places:
            if p.code == code:
                return RouteResult(RouteStatus.matched, [self._candidate(p, 100.0)])
        grid = self._grids.get(code)
        if grid is not None:
            return RouteResult(RouteStatus.matched, [self._grid_candidate(grid, 100.0)])
        return RouteResult(RouteStatus.none)

    # -- by point ---------------------------------------------------------
    def by_point(self, lat: float, lon: float) -> RouteResult:
        if self._tree is None:
            return RouteResult(RouteStatus.none)
        point = Point(lon, lat)
        hits = self._tree.query(point, predicate="intersects")
        grids = sorted((self._shaped[int(i)] for i in hits), key=lambda g: g.code)
        if len(grids) == 1:
            return RouteResult(RouteStatus.matched, [self._grid_candidate(grids[0], 100.0)])
        if len(grids) > 1:  # on a shared border: let a person choose
            return RouteResult(RouteStatus.ambiguous, [self._grid_candidate(g, 100.0) for g in grids])
        near = self._tree.query_nearest(point, max_distance=NEAREST_GRID_DEGREES, all_matches=True)
        nearby = []
        for i in near:
            g = self._shaped[int(i)]
            distance = g.geometry.distance(point) if g.geometry is not None else 1.0
            nearby.append(self._grid_candidate(g, round(100.0 * (1 - distance / NEAREST_GRID_DEGREES), 1)))
        return RouteResult(RouteStatus.none, sorted(nearby, key=lambda c: -c.score))

    def grids_at(self, lat: float, lon: float) -> list[str]:
        """The codes of the grids whose polygon covers the point (two on a shared border), by
        code; none when it lies outside every grid (a check-in on site asks this)."""
        result = self.by_point(lat, lon)
        if result.status in (RouteStatus.matched, RouteStatus.ambiguous):
            return [c.grid_code for c in result.candidates]
        return []

    # -- by text ----------------------------------------------------------
    def estate_named(self, text: str) -> str | None:
        """The estate a message names anywhere in it ("和平里" in "和平里1号楼门口…"), the
        longest name that occurs; None when it names none. Names without their 小区/社区/花园
        ending count too, as residents drop it."""
        query = normalise(text)
        best: tuple[int, str] | None = None
        for estate in {p.estate.partition("|")[0] for p in self._places if p.kind == "building"}:
            for name in {estate, _ESTATE_ENDING.sub("", estate)}:
                if len(name) >= 2 and name in query and (best is None or len(name) > best[0]):
                    best = (len(name), estate)
        return best[1] if best else None

    def by_text(self, text: str, community_code: str | None = None) -> RouteResult:
        query = normalise(text)
        if not query:
            return RouteResult(RouteStatus.none)
        building = _BUILDING_RE.search(query)
        if building:
            return self._by_building_number(query, building, community_code)
        return self._by_name(query, community_code)

    def _by_building_number(
        self, query: str, match: re.Match[str], community_code: str | None
    ) -> RouteResult:
        number = str(int(match.group(1)))
        rest = query[: match.start()] + " " + query[match.end():]
        rest = _UNIT_RE.sub(" ", rest)
        rest = _ROOM_RE.sub(" ", rest)
        qualifier = _FILLERS.sub("", rest)
        pool = [p for p in self._places if p.kind == "building" and p.number == number]
        scored: list[tuple[float, _PlaceEntry]] = []
        for p in pool:
            if qualifier:
                # The estate's own name counts fully; the community's name (several
                # estates share it) counts less, so it only breaks ties across communities.
                estate, _, community = p.estate.partition("|")
                score = max(_similarity(qualifier, estate),
                            _similarity(qualifier, community) - COMMUNITY_PENALTY)
            else:
                score = 90.0  # the number alone fits every estate equally
            if community_code and p.community_code == community_code:
                score += 5.0
            scored.append((score, p))
        return self._decide(scored, require_qualifier_match=bool(qualifier))

    def _by_name(self, query: str, community_code: str | None) -> RouteResult:
        core = _FILLERS.sub("", query)
        scored = []
        for p in self._places:
            score = max(_similarity(core, name) for name in p.names)
            if score < CANDIDATE_FLOOR:
                continue
            if community_code and p.community_code == community_code:
                score += 5.0
            scored.append((score, p))
        return self._decide(scored, require_qualifier_match=True)

    def _decide(
        self, scored: list[tuple[float, _PlaceEntry]], *, require_qualifier_match: bool
    ) -> RouteResult:
        if not scored:
            return RouteResult(RouteStatus.none)
        scored.sort(key=lambda sp: (-sp[0], sp[1].code))
        candidates = [self._candidate(p, min(s, 100.0)) for s, p in scored[:10]]
        top = scored[0][0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        if top >= MATCH_SCORE and top - runner_up >= CLEAR_LEAD:
            return RouteResult(RouteStatus.matched, candidates[:1] + candidates[1:5])
        if require_qualifier_match and top < CANDIDATE_FLOOR:
            return RouteResult(RouteStatus.none, candidates)
        if top < MATCH_SCORE:
            return RouteResult(RouteStatus.none, candidates)
        return RouteResult(RouteStatus.ambiguous, candidates)

    # -- helpers ----------------------------------------------------------
    def _candidate(self, p: _PlaceEntry, score: float) -> Candidate:
        return Candidate(p.kind, p.code, p.label, p.grid_code, p.community_code, round(score, 1))

    def _grid_candidate(self, g: _GridEntry, score: float) -> Candidate:
        return Candidate("grid", g.code, g.name, g.code, g.community_code, score)


ROUTER_CHECK_SECONDS = 5.0
# Rebuilt after this long even with the same stamp: an edit made outside gridbot (SQL by hand)
# or stamped by a clock that is behind is picked up all the same.
ROUTER_MAX_AGE_SECONDS = 600.0


def registry_stamp(session: Session) -> tuple[object, ...]:
    """Changes whenever the registry does: a row added or removed (the counts) or edited (the
    latest updated_at). One query of aggregates, against ~50 ms to build the router."""
    columns = [select(agg).select_from(model).scalar_subquery()
               for model in (Community, Grid, Building, Landmark)
               for agg in (func.count(), func.max(model.updated_at))]
    return tuple(session.execute(select(*columns)).one())


class RouterCache:
    """The registry's router, shared by threads: at most every `check_every` seconds the
    registry's stamp is read, and the router rebuilt if the stamp changed (or it is
    ROUTER_MAX_AGE_SECONDS old) — so a re-import is picked up within seconds and an unchanged
    registry is rebuilt only every ten minutes."""

    def __init__(self, factory: sessionmaker[Session], check_every: float = ROUTER_CHECK_SECONDS) -> None:
        self._factory = factory
        self._check_every = check_every
        self._lock = threading.Lock()
        self._router: Router | None = None
        self._stamp: tuple[object, ...] | None = None
        self._checked = self._built = -math.inf

    def due(self) -> bool:
        """Will `get` read the database? (An async caller then calls it off its event loop.)"""
        return self._router is None or time.monotonic() - self._checked >= self._check_every

    def get(self) -> Router:
        with self._lock:
            if self.due():
                with read_scope(self._factory) as session:
                    stamp = registry_stamp(session)
                    if (self._router is None or stamp != self._stamp
                            or time.monotonic() - self._built >= ROUTER_MAX_AGE_SECONDS):
                        self._router, self._stamp = Router.from_session(session), stamp
                        self._built = time.monotonic()
                self._checked = time.monotonic()
            assert self._router is not None
            return self._router
