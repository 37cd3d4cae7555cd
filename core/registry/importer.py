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
  *.yml / *.yaml  sections streets, communities, grids, buildings, landmarks, people, branches,
                  units, organisations, service_centres (双报到 and 附近的党组织: each with
                  address, lat/lon; organisations and centres with hours and phone)
                  spaces (共享空间: community, name, kind, capacity, hours like "mon-fri
                  08:30-17:30, sat 09:00-12:00", equipment, needs_approval, managers,
                  bookers of party_org / resident / enterprise, slot_minutes, address)
  <section>.csv   one section per file, named after it (buildings.csv, …); list
                  cells separated by ";"
                  resources (三张清单) and library (党员学习资料库: topic, kind text/link/document/
                  photo, title, text/url/file_id, date; of a community or a branch)
  *.geojson       a FeatureCollection of grid polygons, properties.code = grid code

Coordinates are WGS-84 unless the registry says `crs: gcj02` (core.registry.coordinates): then
every polygon and point is converted to WGS-84 before validation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

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
    MaterialKind,
    PartyGroup,
    PartyOrganisation,
    Person,
    Resource,
    Role,
    RoleGrant,
    ServiceCentre,
    Space,
    SpaceManager,
    Street,
    StudyMaterial,
    WorkUnit,
)
from core.places.router import estate_of
from core.registry.coordinates import normalise as to_registry_crs
from core.registry.reading import (
    Problem,
    Record,
    RegistryInput,
    read_inputs,
)
from core.registry.validation import validate
from core.spaces import hours as space_hours
from core.spaces.access import BOOKERS
from core.spaces.rules import YES


class ImportFailed(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the registry input; nothing was changed")
        self.problems = problems


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


# ---------------------------------------------------------------------------
# Validation


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
        for key in ("street_id", "community_id", "grid_id", "branch_id"):
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


# A community's optional public contact details: its office and its 党群服务中心 (社区电话多少).
COMMUNITY_CONTACT = ("phone", "address", "hours", "center_name", "center_phone", "center_address", "center_hours")


def _text_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip()


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
                 {"name": r.get("name"), "street_id": a.id_of(Street, r.get("street")),
                  **{key: _text_or_none(r.get(key)) for key in COMMUNITY_CONTACT}})
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
    for r in recs.get("streets", []):
        if "admins" in r.data:
            _replace_grants(a, report, Role.street_admin, {"street_id": a.id_of(Street, r.code)}, r.get("admins") or [])
        if "commanders" in r.data:  # 战时 指挥长, on top of admins (validation checks they are)
            _replace_grants(a, report, Role.commander, {"street_id": a.id_of(Street, r.code)},
                            r.get("commanders") or [])
    for r in recs.get("communities", []):
        if "admins" in r.data:
            _replace_grants(a, report, Role.community_admin,
                            {"community_id": a.id_of(Community, r.code)}, r.get("admins") or [])
        if "commanders" in r.data:
            _replace_grants(a, report, Role.commander, {"community_id": a.id_of(Community, r.code)},
                            r.get("commanders") or [])
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
    _apply_places(a, recs)
    _apply_library(a, recs)
    return report


def _place(a: _Applier, r: Record) -> dict[str, Any]:
    return {"name": r.get("name"), "community_id": a.id_of(Community, r.get("community")),
            "address": _text_or_none(r.get("address")),
            "lat": _float_or_none(r.get("lat")), "lon": _float_or_none(r.get("lon"))}


def _apply_places(a: _Applier, recs: dict[str, list[Record]]) -> None:
    """Units, party organisations and service centres (双报到 and navigation). Upserted by code;
    a registration or 在职党员 grant never depends on them, so nothing here removes a row."""
    for r in recs.get("units", []):
        a.upsert(WorkUnit, "units", r.code, _place(a, r))
    for r in recs.get("organisations", []):
        a.upsert(PartyOrganisation, "organisations", r.code, {
            **_place(a, r), "kind": str(r.get("kind") or "branch"),
            "branch_id": a.id_of(Branch, r.get("branch")), "unit_id": a.id_of(WorkUnit, r.get("unit")),
            "hours": _text_or_none(r.get("hours")), "phone": _text_or_none(r.get("phone"))})
    for r in recs.get("service_centres", []):
        a.upsert(ServiceCentre, "service_centres", r.code, {
            **_place(a, r), "hours": _text_or_none(r.get("hours")), "phone": _text_or_none(r.get("phone"))})
    for r in recs.get("resources", []):  # 三张清单: upserted by code, never removed (projects use them)
        organisation_id = a.id_of(PartyOrganisation, r.get("organisation"))
        organisation = a.session.get(PartyOrganisation, organisation_id) if organisation_id is not None else None
        a.upsert(Resource, "resources", r.code, {
            "organisation_id": organisation_id, "organisation": organisation.name if organisation else "",
            "community_id": a.id_of(Community, r.get("community")), "kind": str(r.get("kind")),
            "title": str(r.get("title")), "quantity": int(r.get("quantity") or 1),
            "available_from": date.fromisoformat(str(r.get("from"))),
            "available_to": date.fromisoformat(str(r.get("to")))})
    a.session.flush()
    _apply_spaces(a, recs)


def _apply_spaces(a: _Applier, recs: dict[str, list[Record]]) -> None:
    """共享空间: upserted by code, never removed (bookings keep them); a space's managers are the
    file's list."""
    for r in recs.get("spaces", []):
        approval = r.data.get("needs_approval")
        space = a.upsert(Space, "spaces", r.code, {
            "community_id": a.id_of(Community, r.get("community")), "name": str(r.get("name")),
            "kind": str(r.get("kind")), "capacity": int(str(r.get("capacity"))),
            "hours": space_hours.parse(r.get("hours")),
            "equipment": [str(x) for x in r.get("equipment") or []],
            "needs_approval": approval if isinstance(approval, bool) else str(approval or "").strip().lower() in YES,
            "bookers": [b for b in BOOKERS if b in (r.get("bookers") or BOOKERS)],
            "slot_minutes": int(str(r.get("slot_minutes") or 60)), "address": _text_or_none(r.get("address"))})
        if "managers" not in r.data:
            continue
        wanted = {pid for code in r.get("managers") or [] if (pid := a.id_of(Person, str(code))) is not None}
        current = {m.person_id: m for m in a.session.scalars(select(SpaceManager).where(SpaceManager.space_id == space.id))}
        for person_id, row in current.items():
            if person_id not in wanted:
                a.session.delete(row)
        for person_id in wanted - set(current):
            a.session.add(SpaceManager(space_id=space.id, person_id=person_id))
        if wanted != set(current):
            a.report.updated["space_managers"] += 1
    a.session.flush()


def _apply_library(a: _Applier, recs: dict[str, list[Record]]) -> None:
    """党员学习资料库 items (core.study): upserted by code, never removed. A community's item is
    read by every branch of it; a date sets where it sorts (newest first)."""
    for r in recs.get("library", []):
        branch_id = a.id_of(Branch, r.get("branch"))
        branch = a.session.get(Branch, branch_id) if branch_id is not None else None
        grid = a.session.get(Grid, branch.grid_id) if branch is not None else None
        values: dict[str, Any] = {
            "community_id": grid.community_id if grid is not None else a.id_of(Community, r.get("community")),
            "branch_id": branch_id, "kind": MaterialKind(str(r.get("kind"))), "topic": str(r.get("topic")).strip(),
            "title": str(r.get("title")).strip(), "body": str(r.get("text") or "").strip(),
            "url": _text_or_none(r.get("url")), "file_id": _text_or_none(r.get("file_id")),
            "file_name": _text_or_none(r.get("file_name"))}
        if r.get("date") is not None:
            values["created_at"] = datetime.combine(date.fromisoformat(str(r.get("date"))), time(), tzinfo=timezone.utc)
        a.upsert(StudyMaterial, "library", r.code, values)
    a.session.flush()


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
        problems = to_registry_crs(data)  # `crs: gcj02`: everything converted to WGS-84 first
    if not problems:
        problems = validate(data, session)
    if problems:
        raise ImportFailed(problems)
    return apply(data, session)
