"""`gridbot import`: validation with file and line, all-or-nothing, idempotent upserts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import (
    Branch,
    BranchMember,
    Building,
    Community,
    Grid,
    Landmark,
    Person,
    Role,
    RoleGrant,
)
from core.registry.importer import ImportFailed, import_registry

SMALL = textwrap.dedent("""\
    streets:
      - {code: ST, name: 测试街道}
    communities:
      - code: C1
        street: ST
        name: 测试社区
        admins: [P3]
    grids:
      - code: G1
        community: C1
        name: 第一网格
        workers: [P3]
      - code: G2
        community: C1
        name: 第二网格
    buildings:
      - code: B1
        grid: G1
        address: 阳光小区1号楼
        number: "1"
        aliases: [1号楼]
        lat: 39.9005
        lon: 116.4005
      - code: B2
        grid: G2
        address: 阳光小区2号楼
        number: "2"
        aliases: [2号楼]
    people:
      - {code: P1, name: 张三, telegram_id: 101, phone: "13800000001", building: B1, roles: [member]}
      - {code: P2, name: 李四, telegram_id: 102, roles: [member, volunteer]}
      - {code: P3, name: 王五, telegram_id: 103, roles: [grid_worker, community_admin]}
    branches:
      - code: BR1
        grid: G1
        name: 第一网格党支部
        chat_id: -1001
        secretary: P1
        members: [P1, P2]
""")

POLYGONS = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {"code": "G1"},
         "geometry": {"type": "Polygon", "coordinates": [[[116.4, 39.9], [116.401, 39.9], [116.401, 39.901], [116.4, 39.901], [116.4, 39.9]]]}},
        {"type": "Feature", "properties": {"code": "G2"},
         "geometry": {"type": "Polygon", "coordinates": [[[116.401, 39.9], [116.402, 39.9], [116.402, 39.901], [116.401, 39.901], [116.401, 39.9]]]}},
    ],
}


def write_registry(tmp_path: Path, yaml_text: str = SMALL, polygons: dict | None = None) -> list[Path]:
    reg = tmp_path / "registry.yml"
    reg.write_text(yaml_text, encoding="utf-8")
    geo = tmp_path / "grids.geojson"
    geo.write_text(json.dumps(polygons or POLYGONS, ensure_ascii=False, indent=2), encoding="utf-8")
    return [reg, geo]


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def record_line(text: str, offset: int) -> int:
    """Line of the list item (`  - …`) that contains character `offset`."""
    lines = text.splitlines()
    for index in range(text[:offset].count("\n"), -1, -1):
        if lines[index].startswith("  - "):
            return index + 1
    raise AssertionError("no record before offset")


def snapshot(session: Session) -> dict[str, object]:
    """Everything an import can touch, to prove that a failed one touched nothing."""
    return {
        "people": sorted((p.code, p.display_name, p.telegram_id, p.phone) for p in session.scalars(select(Person))),
        "buildings": sorted((b.code, b.grid_id, b.address, tuple(b.aliases)) for b in session.scalars(select(Building))),
        "grids": sorted((g.code, g.name, json.dumps(g.polygon, sort_keys=True)) for g in session.scalars(select(Grid))),
        "grants": sorted((g.person_id, g.role.value, g.community_id, g.grid_id, g.branch_id) for g in session.scalars(select(RoleGrant))),
        "members": sorted((m.branch_id, m.person_id) for m in session.scalars(select(BranchMember))),
        "branches": sorted((b.code, b.secretary_id, b.telegram_chat_id) for b in session.scalars(select(Branch))),
    }


def run_import(factory: sessionmaker[Session], paths: list[Path]):  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return import_registry(session, paths)


def problems_of(factory: sessionmaker[Session], paths: list[Path]) -> list[str]:
    with pytest.raises(ImportFailed) as failed, session_scope(factory) as session:
        import_registry(session, paths)
    return [str(p) for p in failed.value.problems]


def test_small_registry_imports_with_roles_and_members(factory: sessionmaker[Session], tmp_path: Path) -> None:
    report = run_import(factory, write_registry(tmp_path))
    assert report.created["buildings"] == 2 and report.created["people"] == 3
    with session_scope(factory) as s:
        p1 = s.scalar(select(Person).where(Person.code == "P1"))
        assert p1 is not None and p1.has_role(Role.member) and p1.has_role(Role.secretary)
        p3 = s.scalar(select(Person).where(Person.code == "P3"))
        assert p3 is not None and p3.has_role(Role.grid_worker) and p3.has_role(Role.community_admin)
        assert not p3.has_role(Role.member)
        g1 = s.scalar(select(Grid).where(Grid.code == "G1"))
        assert g1 is not None and g1.polygon["type"] == "Polygon"
        b1 = s.scalar(select(Building).where(Building.code == "B1"))
        assert b1 is not None and b1.estate == "阳光小区"


def test_demo_registry_size_and_idempotent_reimport(demo_factory: sessionmaker[Session]) -> None:
    from tests.app.conftest import DEMO

    with session_scope(demo_factory) as s:
        assert s.scalar(select(func.count()).select_from(Community)) >= 2
        assert s.scalar(select(func.count()).select_from(Grid).where(Grid.polygon.is_not(None))) >= 6
        assert s.scalar(select(func.count()).select_from(Building)) >= 60
        assert s.scalar(select(func.count()).select_from(Branch).where(Branch.secretary_id.is_not(None))) == \
            s.scalar(select(func.count()).select_from(Grid))
        before = snapshot(s)
        stamps = sorted((b.code, b.updated_at) for b in s.scalars(select(Building)))
    report = run_import(demo_factory, [DEMO])
    assert report.changes == 0, report.as_dict()
    assert report.unchanged["buildings"] >= 60
    with session_scope(demo_factory) as s:
        assert snapshot(s) == before
        assert sorted((b.code, b.updated_at) for b in s.scalars(select(Building))) == stamps


def test_reimport_with_a_change_updates_only_that(factory: sessionmaker[Session], tmp_path: Path) -> None:
    run_import(factory, write_registry(tmp_path))
    changed = SMALL.replace("address: 阳光小区2号楼", "address: 阳光小区二号楼")
    changed = changed.replace("members: [P1, P2]", "members: [P1]")
    report = run_import(factory, write_registry(tmp_path, changed))
    assert report.updated["buildings"] == 1
    assert report.created == {}
    with session_scope(factory) as s:
        branch = s.scalar(select(Branch).where(Branch.code == "BR1"))
        assert branch is not None
        assert [m.person.code for m in branch.members] == ["P1"]
        p2 = s.scalar(select(Person).where(Person.code == "P2"))
        assert p2 is not None and not p2.has_role(Role.member) and p2.has_role(Role.volunteer)


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        pytest.param("  - code: B2\n    grid: G2", "  - code: B2\n    grid: G9", "  - code: B2",
                     "unknown grid 'G9'", id="unknown-grid"),
        pytest.param("  - code: B2\n    grid: G2", "  - code: B1\n    grid: G1", "  - code: B1\n",
                     "duplicate building B1", id="duplicate-building"),
        pytest.param("  - code: B2\n    grid: G2", "  - code: B1\n    grid: G2", "  - code: B1\n",
                     "building B1 is in two grids: G1", id="building-in-two-grids"),
        pytest.param("secretary: P1", "secretary: P3", "  - code: BR1",
                     "secretary P3 is not a member", id="secretary-not-member"),
        pytest.param("members: [P1, P2]", "members: [P1, P2, P9]", "  - code: BR1",
                     "unknown person 'P9'", id="unknown-member"),
        pytest.param("roles: [member, volunteer]", "roles: [member, mayor]", "code: P2",
                     "unknown role(s) mayor", id="unknown-role"),
        pytest.param("telegram_id: 102", "telegram_id: 101", "code: P2",
                     "telegram_id 101 already used by P1", id="duplicate-telegram-id"),
        pytest.param("    lat: 39.9005\n    lon: 116.4005", "    lat: 39.9005\n    lon: 116.4015", "  - code: B1",
                     "outside its grid G1; it lies in G2", id="building-outside-its-grid"),
        pytest.param("    lat: 39.9005", "    lat: north", "  - code: B1",
                     "lat 'north' is not a number", id="bad-latitude"),
    ],
)
def test_each_problem_is_reported_with_its_line_and_nothing_changes(
    factory: sessionmaker[Session], tmp_path: Path, old: str, new: str, needle: str, expected: str
) -> None:
    run_import(factory, write_registry(tmp_path))
    with session_scope(factory) as s:
        before = snapshot(s)
    assert old in SMALL
    broken = SMALL.replace(old, new, 1)
    # Also change a valid record, to prove the valid part is not applied either.
    broken = broken.replace("name: 张三", "name: 张三丰")
    paths = write_registry(tmp_path, broken)
    problems = problems_of(factory, paths)
    line = record_line(broken, SMALL.index(old))
    assert needle.split("\n")[0].strip().lstrip("- ") in broken.splitlines()[line - 1], "test points at the wrong record"
    assert any(p.startswith(f"{paths[0]}:{line}: ") and expected in p for p in problems), problems
    with session_scope(factory) as s:
        assert snapshot(s) == before


def test_bad_polygons_are_reported_with_geojson_line(factory: sessionmaker[Session], tmp_path: Path) -> None:
    polygons = json.loads(json.dumps(POLYGONS))
    # A bow-tie: self-intersecting ring.
    polygons["features"][1]["geometry"]["coordinates"] = [[[116.401, 39.9], [116.402, 39.901], [116.402, 39.9], [116.401, 39.901], [116.401, 39.9]]]
    polygons["features"].append({"type": "Feature", "properties": {"code": "G7"},
                                 "geometry": {"type": "Polygon", "coordinates": [[[116.4, 39.9], [116.41, 39.9], [116.41, 39.91], [116.4, 39.9]]]}})
    polygons["features"].append({"type": "Feature", "properties": {"code": "G1"},
                                 "geometry": {"type": "Point", "coordinates": [116.4, 39.9]}})
    paths = write_registry(tmp_path, SMALL, polygons)
    problems = problems_of(factory, paths)
    geo_text = paths[1].read_text(encoding="utf-8")
    feature_lines = [n for n, line in enumerate(geo_text.splitlines(), start=1) if '"type": "Feature"' in line]
    # json.dumps(indent=2) puts "type": "Feature" on the line after the feature's "{".
    starts = [n - 1 for n in feature_lines]
    assert any(p.startswith(f"{paths[1]}:{starts[1]}: bad polygon for grid G2: Self-intersection") for p in problems), problems
    assert any(p.startswith(f"{paths[1]}:{starts[2]}: polygon for unknown grid 'G7'") for p in problems), problems
    assert any(f"{paths[1]}:{starts[3]}: second polygon for grid G1" in p for p in problems), problems
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Grid)) == 0


def test_unclosed_ring_and_yaml_syntax_error(factory: sessionmaker[Session], tmp_path: Path) -> None:
    polygons = json.loads(json.dumps(POLYGONS))
    polygons["features"][0]["geometry"]["coordinates"][0][-1] = [116.4, 39.9001]
    broken = SMALL.replace("    name: 第二网格\n", "    name: [第二网格\n")
    paths = write_registry(tmp_path, broken, polygons)
    problems = problems_of(factory, paths)
    assert any(p.startswith(f"{paths[0]}:") and "not valid YAML" in p for p in problems), problems
    paths = write_registry(tmp_path, SMALL, polygons)
    problems = problems_of(factory, paths)
    assert any("bad polygon for grid G1: a ring is not closed" in p for p in problems), problems


def test_csv_sections_with_line_numbers(factory: sessionmaker[Session], tmp_path: Path) -> None:
    d = tmp_path / "csv"
    d.mkdir()
    (d / "streets.csv").write_text("code,name\nST,测试街道\n", encoding="utf-8")
    (d / "communities.csv").write_text("code,street,name,admins\nC1,ST,测试社区,\n", encoding="utf-8")
    (d / "grids.csv").write_text("code,community,name,workers\nG1,C1,第一网格,\n", encoding="utf-8")
    (d / "buildings.csv").write_text(
        "code,grid,address,number,aliases,lat,lon\n"
        "B1,G1,阳光小区1号楼,1,1号楼;一号楼,,\n"
        "B2,G1,阳光小区2号楼,2,2号楼,,\n", encoding="utf-8")
    (d / "people.csv").write_text("code,name,telegram_id,phone,building,roles\nP1,张三,101,,B1,member\n", encoding="utf-8")
    (d / "branches.csv").write_text("code,grid,name,chat_id,secretary,members\nBR1,G1,支部,-1001,P1,P1\n", encoding="utf-8")
    report = run_import(factory, [d])
    assert report.created["buildings"] == 2
    with session_scope(factory) as s:
        b1 = s.scalar(select(Building).where(Building.code == "B1"))
        assert b1 is not None and b1.aliases == ["1号楼", "一号楼"]
    assert run_import(factory, [d]).changes == 0
    (d / "buildings.csv").write_text(
        "code,grid,address,number,aliases,lat,lon\n"
        "B1,G1,阳光小区1号楼,1,1号楼,,\n"
        "B3,G5,阳光小区3号楼,3,3号楼,,\n", encoding="utf-8")
    problems = problems_of(factory, [d])
    assert problems == [f"{d / 'buildings.csv'}:3: building B3: unknown grid 'G5' in grid"], problems


def test_landmarks_are_imported(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        gates = s.scalars(select(Landmark).where(Landmark.name.like("%东门"))).all()
        assert len(gates) >= 2
