"""Checking the registry input before anything is written: every problem with its FILE:LINE."""

from __future__ import annotations

from datetime import date
from typing import Any

from shapely.geometry import Point, shape
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.lists.entries import KINDS as RESOURCE_KINDS
from core.models import (
    Branch,
    Building,
    Community,
    Grid,
    Person,
    Street,
    WorkUnit,
)
from core.registry.reading import (
    ORGANISATION_KINDS,
    PERSON_ROLES,
    REQUIRED,
    SECTIONS,
    SINGULAR,
    Polygon,
    Problem,
    Record,
    RegistryInput,
)
from core.spaces import hours as space_hours
from core.spaces.access import BOOKERS
from core.spaces.rules import KINDS as SPACE_KINDS
from core.spaces.rules import NO, SLOT_MINUTES, YES
from core.study.materials import TOPIC_LIMIT


def _as_float(record: Record, key: str, low: float, high: float, problems: list[Problem]) -> None:
    value = record.get(key)
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(record.file, record.line, f"{SINGULAR[record.section]} {record.code}: {key} {value!r} is not a number"))
        return
    if not low <= number <= high:
        problems.append(Problem(record.file, record.line, f"{SINGULAR[record.section]} {record.code}: {key} {number} out of range {low}..{high}"))


def _check_resource(record: Record, problems: list[Problem]) -> None:
    """A resource's kind, quantity and days (from ≤ to, ISO dates)."""
    kind = str(record.get("kind"))
    if kind not in RESOURCE_KINDS:
        problems.append(Problem(record.file, record.line, f"resource {record.code}: unknown kind {kind!r} "
                                                          f"(allowed: {', '.join(RESOURCE_KINDS)})"))
    _as_int(record, "quantity", problems)
    days = []
    for key in ("from", "to"):
        try:
            days.append(date.fromisoformat(str(record.get(key))))
        except ValueError:
            problems.append(Problem(record.file, record.line,
                                    f"resource {record.code}: {key} {record.get(key)!r} is not a date (YYYY-MM-DD)"))
    if len(days) == 2 and days[1] < days[0]:
        problems.append(Problem(record.file, record.line, f"resource {record.code}: to is before from"))


def _check_space(record: Record, problems: list[Problem]) -> None:
    """A space's kind, capacity (> 0), slot length, opening hours, who may book, needs_approval."""
    def fail(message: str) -> None:
        problems.append(Problem(record.file, record.line, f"space {record.code}: {message}"))

    kind = str(record.get("kind"))
    if kind not in SPACE_KINDS:
        fail(f"unknown kind {kind!r} (allowed: {', '.join(SPACE_KINDS)})")
    for key, low, high in (("capacity", 1, 10000), ("slot_minutes", *SLOT_MINUTES)):
        value = record.get(key)
        if value is None:
            continue
        try:
            number = int(str(value))
        except ValueError:
            fail(f"{key} {value!r} is not a whole number")
            continue
        if not low <= number <= high:
            fail(f"{key} {number} must be {low}..{high}")
    if record.get("hours") is not None:
        try:
            space_hours.parse(record.get("hours"))
        except space_hours.BadHours as exc:
            fail(f"bad hours: {exc}")
    bookers = record.get("bookers")
    unknown = sorted(set(bookers or []) - set(BOOKERS))
    if unknown:
        fail(f"unknown bookers {', '.join(unknown)} (allowed: {', '.join(BOOKERS)})")
    approval = record.data.get("needs_approval")
    if approval is not None and not isinstance(approval, bool) and str(approval).strip().lower() not in YES + NO:
        fail(f"needs_approval {approval!r} is not yes or no")


def _check_library_item(record: Record, problems: list[Problem]) -> None:
    """A library item: its kind and what that kind needs (the words, an http(s) link, a Telegram
    file_id), a short topic, an ISO date, and one owner (a community or a branch)."""
    def fail(message: str) -> None:
        problems.append(Problem(record.file, record.line, f"library item {record.code}: {message}"))

    kind = str(record.get("kind"))
    needs = {"text": "text", "link": "url", "document": "file_id", "photo": "file_id"}
    if kind not in needs:
        fail(f"unknown kind {kind!r} (allowed: {', '.join(needs)})")
    elif not str(record.get(needs[kind], "")).strip():
        fail(f"a {kind} needs {needs[kind]}")
    elif kind == "link" and not str(record.get("url")).lower().startswith(("http://", "https://")):
        fail(f"url {record.get('url')!r} is not an http(s) link")
    if len(str(record.get("topic", ""))) > TOPIC_LIMIT:
        fail(f"topic longer than {TOPIC_LIMIT} characters")
    if (record.get("community") is None) == (record.get("branch") is None):
        fail("give community (every branch of it reads the item) or branch, one of them")
    if record.get("date") is not None:
        try:
            date.fromisoformat(str(record.get("date")))
        except ValueError:
            fail(f"date {record.get('date')!r} is not a date (YYYY-MM-DD)")


def _as_int(record: Record, key: str, problems: list[Problem]) -> None:
    value = record.get(key)
    if value is None:
        return
    try:
        int(str(value))
    except ValueError:
        problems.append(Problem(record.file, record.line, f"{SINGULAR[record.section]} {record.code}: {key} {value!r} is not a whole number"))


class _Validator:
    def __init__(self, data: RegistryInput, session: Session) -> None:
        self.data = data
        self.session = session
        self.problems: list[Problem] = []
        self.by_code: dict[str, dict[str, Record]] = {s: {} for s in SECTIONS}
        self.db_codes = {
            "streets": set(session.scalars(select(Street.code))),
            "communities": set(session.scalars(select(Community.code))),
            "grids": set(session.scalars(select(Grid.code))),
            "buildings": set(session.scalars(select(Building.code))),
            "people": {c for c in session.scalars(select(Person.code)) if c},
            "branches": set(session.scalars(select(Branch.code))),
            "units": set(session.scalars(select(WorkUnit.code))),
        }

    def fail(self, record: Record | Polygon, message: str) -> None:
        self.problems.append(Problem(record.file, record.line, message))

    def known(self, section: str, code: str) -> bool:
        return code in self.by_code[section] or code in self.db_codes.get(section, set())

    def run(self) -> list[Problem]:
        self._required_and_unique()
        self._references()
        self._polygons_and_points()
        self._people_and_branches()
        return sorted(self.problems, key=lambda p: (p.file, p.line or 0, p.message))

    def _required_and_unique(self) -> None:
        for section in SECTIONS:
            for record in self.data.records.get(section, []):
                missing = [k for k in REQUIRED[section] if not str(record.get(k, "")).strip()]
                if missing:
                    self.fail(record, f"{SINGULAR[section]} {record.code or '?'}: missing {', '.join(missing)}")
                    if "code" in missing:
                        continue
                first = self.by_code[section].get(record.code)
                if first is None:
                    self.by_code[section][record.code] = record
                elif section == "buildings" and first.get("grid") != record.get("grid"):
                    self.fail(record, f"building {record.code} is in two grids: {first.get('grid')} "
                                      f"({first.where}) and {record.get('grid')}")
                else:
                    self.fail(record, f"duplicate {SINGULAR[section]} {record.code} (first at {first.where})")
        for record in self.data.records.get("buildings", []):
            _as_float(record, "lat", -90, 90, self.problems)
            _as_float(record, "lon", -180, 180, self.problems)
        for record in self.data.records.get("landmarks", []):
            _as_float(record, "lat", -90, 90, self.problems)
            _as_float(record, "lon", -180, 180, self.problems)
        for section in ("units", "organisations", "service_centres"):
            for record in self.data.records.get(section, []):
                _as_float(record, "lat", -90, 90, self.problems)
                _as_float(record, "lon", -180, 180, self.problems)
                if (record.get("lat") is None) != (record.get("lon") is None):
                    self.fail(record, f"{SINGULAR[section]} {record.code}: give both lat and lon, or neither")
        for record in self.data.records.get("organisations", []):
            kind = record.get("kind")
            if kind is not None and str(kind) not in ORGANISATION_KINDS:
                self.fail(record, f"organisation {record.code}: unknown kind {kind!r} "
                                  f"(allowed: {', '.join(sorted(ORGANISATION_KINDS))})")
        for record in self.data.records.get("resources", []):
            _check_resource(record, self.problems)
        for record in self.data.records.get("spaces", []):
            _check_space(record, self.problems)
        for record in self.data.records.get("library", []):
            _check_library_item(record, self.problems)
        for record in self.data.records.get("people", []):
            _as_int(record, "telegram_id", self.problems)
        for record in self.data.records.get("branches", []):
            _as_int(record, "chat_id", self.problems)

    def _ref(self, record: Record, key: str, section: str) -> None:
        value = record.get(key)
        if value is not None and not self.known(section, str(value)):
            self.fail(record, f"{SINGULAR[record.section]} {record.code}: unknown {SINGULAR[section]} {value!r} in {key}")

    def _refs(self, record: Record, key: str, section: str) -> None:
        for value in record.get(key) or []:
            if not self.known(section, str(value)):
                self.fail(record, f"{SINGULAR[record.section]} {record.code}: unknown {SINGULAR[section]} {value!r} in {key}")

    def _commanders(self, record: Record) -> None:
        """战时 指挥长: a grant on top of the admin role, so each must be one of the record's admins."""
        self._refs(record, "commanders", "people")
        admins = {str(a) for a in record.get("admins") or []}
        for code in record.get("commanders") or []:
            if str(code) not in admins:
                self.fail(record, f"{SINGULAR[record.section]} {record.code}: commander {code} is not one of its "
                                  f"admins (a commander is an admin with the commander grant)")

    def _references(self) -> None:
        for r in self.data.records.get("streets", []):
            self._refs(r, "admins", "people")
            self._commanders(r)
        for r in self.data.records.get("communities", []):
            self._ref(r, "street", "streets")
            self._refs(r, "admins", "people")
            self._commanders(r)
        for r in self.data.records.get("grids", []):
            self._ref(r, "community", "communities")
            self._refs(r, "workers", "people")
        for r in self.data.records.get("buildings", []):
            self._ref(r, "grid", "grids")
        for r in self.data.records.get("landmarks", []):
            self._ref(r, "grid", "grids")
        for r in self.data.records.get("people", []):
            self._ref(r, "building", "buildings")
            bad = sorted(set(r.get("roles") or []) - PERSON_ROLES)
            if bad:
                self.fail(r, f"person {r.code}: unknown role(s) {', '.join(bad)} "
                             f"(allowed: {', '.join(sorted(PERSON_ROLES))})")
        for r in self.data.records.get("branches", []):
            self._ref(r, "grid", "grids")
            self._ref(r, "secretary", "people")
            self._refs(r, "members", "people")
        for section in ("units", "organisations", "service_centres"):
            for r in self.data.records.get(section, []):
                self._ref(r, "community", "communities")
        for r in self.data.records.get("organisations", []):
            self._ref(r, "branch", "branches")
            self._ref(r, "unit", "units")
        for r in self.data.records.get("resources", []):
            self._ref(r, "organisation", "organisations")
            self._ref(r, "community", "communities")
        for r in self.data.records.get("spaces", []):
            self._ref(r, "community", "communities")
            self._refs(r, "managers", "people")
        for r in self.data.records.get("library", []):
            self._ref(r, "community", "communities")
            self._ref(r, "branch", "branches")

    def _polygons_and_points(self) -> None:
        shapes: dict[str, Any] = {}
        seen: dict[str, Polygon] = {}
        for poly in self.data.polygons:
            if not self.known("grids", poly.grid_code):
                self.fail(poly, f"polygon for unknown grid {poly.grid_code!r}")
                continue
            if poly.grid_code in seen:
                self.fail(poly, f"second polygon for grid {poly.grid_code} (first at {seen[poly.grid_code].file}:{seen[poly.grid_code].line})")
                continue
            seen[poly.grid_code] = poly
            reason = _polygon_problem(poly.geometry)
            if reason:
                self.fail(poly, f"bad polygon for grid {poly.grid_code}: {reason}")
                continue
            shapes[poly.grid_code] = shape(poly.geometry)
        for section in ("buildings", "landmarks"):
            for r in self.data.records.get(section, []):
                grid = r.get("grid")
                lat, lon = r.get("lat"), r.get("lon")
                if grid not in shapes or lat is None or lon is None:
                    continue
                try:
                    point = Point(float(lon), float(lat))
                except (TypeError, ValueError):
                    continue
                if not shapes[grid].covers(point):
                    inside = [code for code, s in shapes.items() if s.covers(point)]
                    hint = f"; it lies in {', '.join(inside)}" if inside else ""
                    self.fail(r, f"{SINGULAR[section]} {r.code} at ({lat}, {lon}) is outside its grid {grid}{hint}")

    def _people_and_branches(self) -> None:
        seen_tg: dict[int, Record] = {}
        for r in self.data.records.get("people", []):
            tg = r.get("telegram_id")
            if tg is None:
                continue
            try:
                tg_id = int(str(tg))
            except ValueError:
                continue
            if tg_id in seen_tg:
                self.fail(r, f"person {r.code}: telegram_id {tg_id} already used by {seen_tg[tg_id].code} ({seen_tg[tg_id].where})")
            seen_tg[tg_id] = r
            other = self.session.scalar(select(Person).where(Person.telegram_id == tg_id))
            if other is not None and other.code != r.code:
                self.fail(r, f"person {r.code}: telegram_id {tg_id} belongs to another person in the database ({other.code or 'chat user'})")
        seen_grid: dict[str, Record] = {}
        seen_chat: dict[str, Record] = {}
        for r in self.data.records.get("branches", []):
            members = [str(m) for m in r.get("members") or []]
            secretary = r.get("secretary")
            if secretary is not None and str(secretary) not in members:
                self.fail(r, f"branch {r.code}: secretary {secretary} is not a member of the branch")
            grid = r.get("grid")
            if grid in seen_grid:
                self.fail(r, f"branch {r.code}: grid {grid} already has branch {seen_grid[grid].code} ({seen_grid[grid].where})")
            elif grid is not None:
                seen_grid[grid] = r
            chat = r.get("chat_id")
            if chat is not None:
                if str(chat) in seen_chat:
                    self.fail(r, f"branch {r.code}: chat_id {chat} already used by {seen_chat[str(chat)].code}")
                seen_chat[str(chat)] = r
            for group in r.get("groups") or []:
                gcode = group.get("code", "?")
                for m in group.get("members") or []:
                    if str(m) not in members:
                        self.fail(r, f"branch {r.code}: party group {gcode} member {m} is not a member of the branch")
                leader = group.get("leader")
                if leader is not None and str(leader) not in members:
                    self.fail(r, f"branch {r.code}: party group {gcode} leader {leader} is not a member of the branch")
                for b in group.get("buildings") or []:
                    if not self.known("buildings", str(b)):
                        self.fail(r, f"branch {r.code}: party group {gcode}: unknown building {b!r}")


def _polygon_problem(geometry: Any) -> str | None:
    if not isinstance(geometry, dict):
        return "geometry missing"
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        return f"geometry type {geometry.get('type')!r}, expected Polygon or MultiPolygon"
    polygons = geometry.get("coordinates")
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    try:
        for polygon in polygons or []:
            for ring in polygon:
                if len(ring) < 4:
                    return f"a ring has {len(ring)} points; at least 4 are needed"
                if list(ring[0]) != list(ring[-1]):
                    return "a ring is not closed (first and last points differ)"
                for lon, lat, *_ in ring:
                    if not (-180 <= float(lon) <= 180 and -90 <= float(lat) <= 90):
                        return f"coordinate ({lon}, {lat}) is not lon/lat"
        geom = shape(geometry)
    except (TypeError, ValueError, IndexError) as exc:
        return f"unreadable coordinates ({exc})"
    if geom.is_empty:
        return "empty geometry"
    if not geom.is_valid:
        return explain_validity(geom)
    return None


def validate(data: RegistryInput, session: Session) -> list[Problem]:
    return _Validator(data, session).run()
