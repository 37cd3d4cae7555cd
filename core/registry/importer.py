"""`gridbot import`: load the grid registry from YAML, CSV and GeoJSON.

The whole input is read and validated before anything is written; every
problem is reported with its file and line, and if there is any problem the
database is left untouched. Records are upserted by code, so importing the
same files again changes nothing. For the scopes a file mentions (a
community's admins, a grid's workers, a branch's members), the file is the
truth: the lists replace what the database had — except members who joined a
branch with its secretary's invite code (/invite, /join) and are not in the
file: they stay until `gridbot revoke` takes them out (once a file lists them,
they are the registry's like anyone else).

Inputs (any mix, given as files or directories):
  *.yml / *.yaml  sections streets, communities, grids, buildings, landmarks, people, branches
  <section>.csv   one section per file, named after it (buildings.csv, …); list
                  cells separated by ";"
  *.geojson       a FeatureCollection of grid polygons, properties.code = grid code
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from shapely.geometry import Point, shape
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    JOINED_INVITE,
    JOINED_REGISTRY,
    Branch,
    BranchMember,
    Building,
    Community,
    Grid,
    Landmark,
    PartyGroup,
    Person,
    Role,
    RoleGrant,
    Street,
)
from core.places.router import estate_of

SECTIONS = ("streets", "communities", "grids", "buildings", "landmarks", "people", "branches")
PERSON_ROLES = {"resident", "volunteer", "member", "grid_worker", "community_admin"}
REQUIRED = {
    "streets": ("code", "name"),
    "communities": ("code", "street", "name"),
    "grids": ("code", "community", "name"),
    "buildings": ("code", "grid", "address"),
    "landmarks": ("code", "grid", "name"),
    "people": ("code", "name"),
    "branches": ("code", "grid", "name"),
}
SINGULAR = {"streets": "street", "communities": "community", "grids": "grid", "buildings": "building",
            "landmarks": "landmark", "people": "person", "branches": "branch"}
LIST_FIELDS = {"admins", "workers", "aliases", "roles", "members", "buildings"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ImportFailed(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the registry input; nothing was changed")
        self.problems = problems


@dataclass
class Record:
    section: str
    data: dict[str, Any]
    file: str
    line: int | None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value in ("", None) else value

    @property
    def code(self) -> str:
        return str(self.data.get("code", "")).strip()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Polygon:
    grid_code: str
    geometry: dict[str, Any]
    file: str
    line: int | None


@dataclass
class RegistryInput:
    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    polygons: list[Polygon] = field(default_factory=list)


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unchanged: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def changes(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())

    def as_dict(self) -> dict[str, Any]:
        return {"created": dict(self.created), "updated": dict(self.updated),
                "unchanged": dict(self.unchanged), "changes": self.changes}


# ---------------------------------------------------------------------------
# Reading


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records each mapping's first line as `__line__`."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping  # type: ignore[return-value]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _expand(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.suffix.lower() in {".yml", ".yaml", ".csv", ".geojson"}))
        else:
            files.append(path)
    return files


def read_inputs(paths: Sequence[Path]) -> tuple[RegistryInput, list[Problem]]:
    data = RegistryInput()
    problems: list[Problem] = []
    for path in _expand(paths):
        name = str(path)
        if not path.exists():
            problems.append(Problem(name, None, "no such file or directory"))
            continue
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, None, f"cannot read: {exc}"))
            continue
        if suffix in (".yml", ".yaml"):
            _read_yaml(name, text, data, problems)
        elif suffix == ".csv":
            _read_csv(name, path.stem.lower(), text, data, problems)
        elif suffix == ".geojson":
            _read_geojson(name, text, data, problems)
        else:
            problems.append(Problem(name, None, "unsupported file type (use .yml, .csv or .geojson)"))
    return data, problems


def _yaml_problem(name: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    return Problem(name, line, f"not valid YAML/JSON: {getattr(exc, 'problem', None) or exc}")


def _read_yaml(name: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(name, exc))
        return
    if doc is None:
        return
    if not isinstance(doc, dict):
        problems.append(Problem(name, 1, "expected a mapping with sections such as grids: and buildings:"))
        return
    for key, items in doc.items():
        if key == "__line__":
            continue
        if key not in SECTIONS:
            problems.append(Problem(name, None, f"unknown section {key!r} (expected one of {', '.join(SECTIONS)})"))
            continue
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(Problem(name, None, f"section {key!r} must be a list"))
            continue
        for item in items:
            if not isinstance(item, dict):
                problems.append(Problem(name, None, f"{key}: each entry must be a mapping, got {item!r}"))
                continue
            line = item.pop("__line__", None)
            record = Record(key, _strip_lines(item), name, line)
            data.records[key].append(record)
            if key == "grids" and item.get("polygon") is not None:
                data.polygons.append(Polygon(record.code, _strip_lines(item["polygon"]), name, line))


def _read_csv(name: str, section: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    if section not in SECTIONS:
        problems.append(Problem(name, None, f"cannot tell what {name} holds: name it after a section "
                                            f"({', '.join(s + '.csv' for s in SECTIONS)})"))
        return
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        problems.append(Problem(name, 1, "empty CSV: expected a header line"))
        return
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(Problem(name, line, "more cells than header columns"))
            continue
        item: dict[str, Any] = {}
        for key, value in row.items():
            key = (key or "").strip()
            value = (value or "").strip()
            if key in LIST_FIELDS:
                item[key] = [v.strip() for v in value.replace("|", ";").split(";") if v.strip()]
            else:
                item[key] = value
        data.records[section].append(Record(section, item, name, line))


def _read_geojson(name: str, text: str, data: RegistryInput, problems: list[Problem]) -> None:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # JSON is YAML; this keeps line numbers
    except yaml.YAMLError:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(name, exc.lineno, f"not valid JSON: {exc.msg}"))
            return
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        problems.append(Problem(name, 1, "expected a GeoJSON FeatureCollection"))
        return
    for feature in doc.get("features") or []:
        line = feature.get("__line__") if isinstance(feature, dict) else None
        props = (feature or {}).get("properties") or {}
        code = str(props.get("code", "")).strip()
        if not code:
            problems.append(Problem(name, line, "feature without properties.code (the grid code)"))
            continue
        data.polygons.append(Polygon(code, _strip_lines(feature.get("geometry")), name, line))


# ---------------------------------------------------------------------------
# Validation


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

    def _references(self) -> None:
        for r in self.data.records.get("communities", []):
            self._ref(r, "street", "streets")
            self._refs(r, "admins", "people")
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


# ---------------------------------------------------------------------------
# Applying


class _Applier:
    def __init__(self, session: Session, report: ImportReport) -> None:
        self.session = session
        self.report = report

    def upsert(self, model: Any, section: str, code: str, values: dict[str, Any]) -> Any:
        obj = self.session.scalar(select(model).where(model.code == code))
        if obj is None:
            obj = model(code=code, **values)
            self.session.add(obj)
            self.session.flush()
            self.report.created[section] += 1
            return obj
        changed = False
        for key, value in values.items():
            if getattr(obj, key) != value:
                setattr(obj, key, value)
                changed = True
        if changed:
            self.session.flush()
            self.report.updated[section] += 1
        else:
            self.report.unchanged[section] += 1
        return obj

    def id_of(self, model: Any, code: str | None) -> int | None:
        if code is None:
            return None
        return self.session.scalar(select(model.id).where(model.code == str(code)))

    def set_grants(self, role: Role, scope: dict[str, int | None], person_codes: Iterable[str],
                   keep: Iterable[int] = ()) -> bool:
        """Make `person_codes` and the person ids `keep` exactly the holders of `role` in `scope`."""
        wanted = {self.id_of(Person, c) for c in person_codes} | set(keep)
        query = select(RoleGrant).where(RoleGrant.role == role)
        for key in ("community_id", "grid_id", "branch_id"):
            query = query.where(getattr(RoleGrant, key).is_(None) if scope.get(key) is None
                                else getattr(RoleGrant, key) == scope[key])
        current = {g.person_id: g for g in self.session.scalars(query)}
        changed = False
        for person_id, grant in current.items():
            if person_id not in wanted:
                self.session.delete(grant)
                changed = True
        for new_id in wanted - set(current):
            if new_id is not None:
                self.session.add(RoleGrant(person_id=new_id, role=role, **scope))
                changed = True
        if changed:
            self.session.flush()
        return changed


def _float_or_none(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def apply(data: RegistryInput, session: Session) -> ImportReport:
    report = ImportReport()
    a = _Applier(session, report)
    polygons = {p.grid_code: p.geometry for p in data.polygons}
    recs = data.records

    for r in recs.get("streets", []):
        a.upsert(Street, "streets", r.code, {"name": r.get("name")})
    for r in recs.get("communities", []):
        a.upsert(Community, "communities", r.code,
                 {"name": r.get("name"), "street_id": a.id_of(Street, r.get("street"))})
    grid_codes_in_input = set()
    for r in recs.get("grids", []):
        grid_codes_in_input.add(r.code)
        values = {"name": r.get("name"), "community_id": a.id_of(Community, r.get("community"))}
        if r.code in polygons:
            values["polygon"] = polygons[r.code]
        a.upsert(Grid, "grids", r.code, values)
    for code, geometry in polygons.items():  # polygons for grids not in this input
        if code not in grid_codes_in_input:
            grid = session.scalar(select(Grid).where(Grid.code == code))
            if grid is not None and grid.polygon != geometry:
                grid.polygon = geometry
                report.updated["grids"] += 1
    for r in recs.get("buildings", []):
        address = str(r.get("address"))
        a.upsert(Building, "buildings", r.code, {
            "grid_id": a.id_of(Grid, r.get("grid")),
            "address": address,
            "estate": r.get("estate") or estate_of(address) or None,
            "number": str(r.get("number")) if r.get("number") is not None else None,
            "aliases": [str(x) for x in r.get("aliases") or []],
            "lat": _float_or_none(r.get("lat")),
            "lon": _float_or_none(r.get("lon")),
        })
    for r in recs.get("landmarks", []):
        a.upsert(Landmark, "landmarks", r.code, {
            "grid_id": a.id_of(Grid, r.get("grid")),
            "name": r.get("name"),
            "aliases": [str(x) for x in r.get("aliases") or []],
            "lat": _float_or_none(r.get("lat")),
            "lon": _float_or_none(r.get("lon")),
        })
    for r in recs.get("people", []):
        tg = r.get("telegram_id")
        a.upsert(Person, "people", r.code, {
            "display_name": r.get("name"),
            "telegram_id": int(str(tg)) if tg is not None else None,
            "phone": str(r.get("phone")) if r.get("phone") is not None else None,
            "building_id": a.id_of(Building, r.get("building")),
        })
        person_id = a.id_of(Person, r.code)
        for role in (Role.resident, Role.volunteer):
            has = role.value in (r.get("roles") or [])
            grant = session.scalar(select(RoleGrant).where(
                RoleGrant.person_id == person_id, RoleGrant.role == role,
                RoleGrant.community_id.is_(None), RoleGrant.grid_id.is_(None), RoleGrant.branch_id.is_(None)))
            if has and grant is None:
                session.add(RoleGrant(person_id=person_id, role=role))
                report.updated["grants"] += 1
            elif not has and grant is not None:
                session.delete(grant)
                report.updated["grants"] += 1
    session.flush()
    for r in recs.get("communities", []):
        if "admins" in r.data:
            _replace_grants(a, report, Role.community_admin,
                            {"community_id": a.id_of(Community, r.code)}, r.get("admins") or [])
    for r in recs.get("grids", []):
        if "workers" in r.data:
            _replace_grants(a, report, Role.grid_worker,
                            {"grid_id": a.id_of(Grid, r.code)}, r.get("workers") or [])
    for r in recs.get("branches", []):
        chat = r.get("chat_id")
        branch = a.upsert(Branch, "branches", r.code, {
            "name": r.get("name"),
            "grid_id": a.id_of(Grid, r.get("grid")),
            "secretary_id": a.id_of(Person, r.get("secretary")),
            "telegram_chat_id": int(str(chat)) if chat is not None else None,
        })
        _sync_branch(a, report, branch, r)
    session.flush()
    return report


def _replace_grants(a: _Applier, report: ImportReport, role: Role, scope: dict[str, int | None],
                    codes: Iterable[str], keep: Iterable[int] = ()) -> None:
    full_scope: dict[str, int | None] = {"community_id": None, "grid_id": None, "branch_id": None, **scope}
    if a.set_grants(role, full_scope, [str(c) for c in codes], keep):
        report.updated["grants"] += 1


def _sync_branch(a: _Applier, report: ImportReport, branch: Branch, r: Record) -> None:
    session = a.session
    member_codes = [str(m) for m in r.get("members") or []]
    wanted = {a.id_of(Person, c): c for c in member_codes}
    current = {m.person_id: m for m in session.scalars(select(BranchMember).where(BranchMember.branch_id == branch.id))}
    kept = {pid for pid, row in current.items() if pid not in wanted and row.joined_by == JOINED_INVITE}
    changed = False
    for person_id, row in list(current.items()):
        if person_id not in wanted and person_id not in kept:
            session.delete(row)
            del current[person_id]
            changed = True
        elif person_id in wanted and row.joined_by != JOINED_REGISTRY:
            row.joined_by = JOINED_REGISTRY  # listed now: the next file without them removes them
            changed = True
    for new_id in wanted:
        if new_id is not None and new_id not in current:
            current[new_id] = BranchMember(branch_id=branch.id, person_id=new_id, joined_by=JOINED_REGISTRY)
            session.add(current[new_id])
            changed = True
    session.flush()
    group_of: dict[int | None, int | None] = dict.fromkeys(wanted)
    for g in r.get("groups") or []:
        group = a.upsert(PartyGroup, "party_groups", str(g.get("code")), {
            "branch_id": branch.id,
            "name": g.get("name"),
            "leader_id": a.id_of(Person, g.get("leader")),
            "building_codes": [str(b) for b in g.get("buildings") or []],
        })
        for m in g.get("members") or []:
            group_of[a.id_of(Person, str(m))] = group.id
    for person_id, row in current.items():
        if person_id in wanted and row.party_group_id != group_of.get(person_id):
            row.party_group_id = group_of.get(person_id)
            changed = True
    if changed:
        report.updated["branch_members"] += 1
    if kept:
        report.unchanged["invited_members"] += len(kept)
    scope: dict[str, int | None] = {"branch_id": branch.id}
    _replace_grants(a, report, Role.member, scope, member_codes, keep=kept)
    secretary = r.get("secretary")
    _replace_grants(a, report, Role.secretary, scope, [secretary] if secretary else [])


def import_registry(session: Session, paths: Sequence[Path]) -> ImportReport:
    """Validate everything, then apply in the caller's transaction; raise ImportFailed on any problem."""
    data, problems = read_inputs(paths)
    if not problems:
        problems = validate(data, session)
    if problems:
        raise ImportFailed(problems)
    return apply(data, session)
