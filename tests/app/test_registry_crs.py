"""The registry's coordinate system: the GCJ-02 ↔ WGS-84 transform against published points, a
registry given in GCJ-02 converted on import (checked, stored, idempotent), `crs:` errors with
file and line, and a resident's Telegram location (WGS-84) routed to the right grid — through
the real Application — where the unconverted polygons would have placed it in no grid."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import Building, Grid, Landmark, ServiceCentre
from core.places.crs import crs_named, gcj02_to_wgs84, metres_between, outside_china, wgs84_to_gcj02
from core.places.router import Router, RouteStatus
from core.registry.importer import ImportFailed, import_registry
from tests.app.conftest import DEMO
from tests.app.journey import journey

NO_RASA = "http://127.0.0.1:9"
NEWCOMER = 700000301  # a Telegram user the registry does not know
# eviltransform's own test points (googollee/eviltransform): WGS-84 lat, lon → GCJ-02 lat, lon
PUBLISHED = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]
HOME = (116.445302, 39.932442)  # WGS-84 of the demo's 和平里小区5号楼 (B-HPL-01-05), in G-HPL-01
POINT_SECTIONS = ("buildings", "landmarks", "units", "organisations", "service_centres")


# -- the transform --------------------------------------------------------------------------------

@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), PUBLISHED)
def test_published_points_both_ways(wgs_lat: float, wgs_lon: float, gcj_lat: float, gcj_lon: float) -> None:
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert abs(lon - gcj_lon) < 1e-9 and abs(lat - gcj_lat) < 1e-9
    back = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert metres_between(back, (wgs_lon, wgs_lat)) < 0.01  # the inverse, by iteration


def test_round_trip_across_china_is_under_a_metre() -> None:
    worst = 0.0
    for lon in [73.0 + 2.5 * i for i in range(26)]:
        for lat in [18.0 + 2.5 * j for j in range(15)]:
            gcj = wgs84_to_gcj02(lon, lat)
            if outside_china(lon, lat):
                assert gcj == (lon, lat)
                continue
            assert metres_between(gcj, (lon, lat)) > 10  # GCJ-02 does move every point in China
            worst = max(worst, metres_between(gcj02_to_wgs84(*gcj), (lon, lat)),
                        metres_between(wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat)), (lon, lat)))
    assert worst < 1.0, worst
    # Beijing: hundreds of metres, which is why it matters
    assert 400 < metres_between(wgs84_to_gcj02(*HOME), HOME) < 800
    assert gcj02_to_wgs84(-0.1276, 51.5072) == (-0.1276, 51.5072)  # London: not shifted


def test_names_of_the_coordinate_systems() -> None:
    assert {crs_named(n) for n in ("wgs84", "WGS-84", "wgs_84", "EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84")} \
        == {"wgs84"}
    assert {crs_named(n) for n in ("gcj02", "GCJ-02", "Gcj_02")} == {"gcj02"}
    assert crs_named("bd09") is None and crs_named(4326) is None and crs_named(None) is None


# -- a registry in GCJ-02 ---------------------------------------------------------------------------

def _gcj(lon: float, lat: float) -> list[float]:
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    return [round(g_lon, 7), round(g_lat, 7)]


def _positions(value: Any) -> Any:
    if isinstance(value, list) and value and not isinstance(value[0], list):
        return _gcj(float(value[0]), float(value[1]))
    return [_positions(v) for v in value]


def gcj_registry(tmp_path: Path, crs: str | None = "GCJ-02") -> list[Path]:
    """The demo registry redrawn in GCJ-02 (as if taken from Chinese map data), stating `crs`."""
    registry = yaml.safe_load((DEMO / "registry.yml").read_text(encoding="utf-8"))
    registry.pop("crs", None)
    for section in POINT_SECTIONS:
        for item in registry.get(section) or []:
            if item.get("lat") is not None:
                item["lon"], item["lat"] = _gcj(item["lon"], item["lat"])
    text = yaml.safe_dump(registry, allow_unicode=True, sort_keys=False)
    if crs is not None:
        text = f"# drawn on GCJ-02 map data\ncrs: {crs}\n" + text
    geo = json.loads((DEMO / "grids.geojson").read_text(encoding="utf-8"))
    for feature in geo["features"]:
        feature["geometry"]["coordinates"] = _positions(feature["geometry"]["coordinates"])
    folder = tmp_path / ("gcj" if crs else "unstated")
    folder.mkdir()
    (folder / "registry.yml").write_text(text, encoding="utf-8")
    (folder / "grids.geojson").write_text(json.dumps(geo, ensure_ascii=False, indent=2), encoding="utf-8")
    return [folder / "registry.yml", folder / "grids.geojson"]


def _demo_polygons() -> dict[str, Any]:
    geo = json.loads((DEMO / "grids.geojson").read_text(encoding="utf-8"))
    return {f["properties"]["code"]: f["geometry"] for f in geo["features"]}


def test_a_gcj02_registry_is_stored_in_wgs84(factory: sessionmaker[Session], tmp_path: Path) -> None:
    paths = gcj_registry(tmp_path)
    with session_scope(factory) as s:
        report = import_registry(s, paths)
    assert report.created["grids"] == 8 and report.created["buildings"] == 72
    demo = _demo_polygons()
    with session_scope(factory) as s:
        for grid in s.scalars(select(Grid)):
            stored = grid.polygon["coordinates"][0]
            for got, want in zip(stored, demo[grid.code]["coordinates"][0], strict=True):
                assert metres_between(tuple(got), tuple(want)) < 1.0, (grid.code, got, want)
            assert shape(grid.polygon).is_valid
        building = s.scalars(select(Building).where(Building.code == "B-HPL-01-05")).one()
        assert metres_between((building.lon, building.lat), HOME) < 1.0
        landmark = s.scalars(select(Landmark).where(Landmark.code == "L-HPL-EG")).one()
        router = Router.from_session(s)
        assert router.grids_at(landmark.lat, landmark.lon) == ["G-HPL-02"]
        centre = s.scalars(select(ServiceCentre).where(ServiceCentre.code == "SC-HPL")).one()
        assert metres_between((centre.lon, centre.lat), (116.4471, 39.9345)) < 1.0
        # the WGS-84 point lies in its own grid; a shared border in both
        assert router.grids_at(HOME[1], HOME[0]) == ["G-HPL-01"]
        assert router.grids_at(39.9325, 116.447) == ["G-HPL-01", "G-HPL-02"]
        assert router.grids_at(39.9306, 116.4505) == []  # the crossroads between the estates
    with session_scope(factory) as s:  # the same files again: nothing changes
        assert import_registry(s, paths).changes == 0


def test_without_the_conversion_the_location_lands_in_no_grid(factory: sessionmaker[Session],
                                                               tmp_path: Path) -> None:
    """The same GCJ-02 files with no `crs:` are read as WGS-84 (the default): 600 m off."""
    with session_scope(factory) as s:
        import_registry(s, gcj_registry(tmp_path, crs=None))
    with session_scope(factory) as s:
        router = Router.from_session(s)
        assert router.grids_at(HOME[1], HOME[0]) == []
        assert router.by_point(HOME[1], HOME[0]).status is RouteStatus.none
        lon, lat = _gcj(*HOME)  # where the files' polygons really are
        assert router.grids_at(lat, lon) == ["G-HPL-01"]


def test_a_shared_location_routes_to_the_real_grid(factory: sessionmaker[Session], tmp_path: Path) -> None:
    """/start, then the resident shares where they stand: the buildings offered are those of the
    grid the WGS-84 point lies in, nearest first."""
    with session_scope(factory) as s:
        import_registry(s, gcj_registry(tmp_path))

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(NEWCOMER, "/start")
            [choose] = await j.step(j.updates.location(NEWCOMER, HOME[1], HOME[0]), NEWCOMER)
            assert choose == "是下面哪一栋？请点选："
            offered = [b["text"] for b in j.fake.last_keyboard(NEWCOMER)]
            assert offered[0] == "和平里小区5号楼", offered
            with session_scope(factory) as s:
                grids = {s.scalars(select(Building).where(Building.address == a)).one().grid.code for a in offered}
            assert grids == {"G-HPL-01"}

    asyncio.run(scenario())


# -- stating it wrong --------------------------------------------------------------------------------

def _small(tmp_path: Path, head: str, geo_crs: Any = None) -> list[Path]:
    registry = tmp_path / "registry.yml"
    registry.write_text(head + "streets:\n  - {code: ST, name: 测试街道}\n", encoding="utf-8")
    geo: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if geo_crs is not None:
        geo = {"type": "FeatureCollection", "crs": geo_crs, "features": []}
    polygons = tmp_path / "grids.geojson"
    polygons.write_text(json.dumps(geo, indent=2), encoding="utf-8")
    return [registry, polygons]


def _problems(factory: sessionmaker[Session], paths: list[Path]) -> list[str]:
    with session_scope(factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, paths)
    return [str(p) for p in failed.value.problems]


def test_unknown_or_conflicting_crs_is_reported_with_file_and_line(factory: sessionmaker[Session],
                                                                   tmp_path: Path) -> None:
    paths = _small(tmp_path, "# the datum\n\ncrs: bd09\n")
    [problem] = _problems(factory, paths)
    assert problem.startswith(f"{paths[0]}:3: unknown coordinate system 'bd09'"), problem
    paths = _small(tmp_path, "crs: GCJ-02\n", {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}})
    [problem] = _problems(factory, paths)
    assert problem.startswith(f"{paths[1]}:3: crs wgs84 here but gcj02 at {paths[0]}:1"), problem
    for fine in ("crs: WGS-84\n", "crs: gcj02\n", ""):
        paths = _small(tmp_path, fine, "EPSG:4326" if fine != "crs: gcj02\n" else "GCJ-02")
        with session_scope(factory) as s:
            assert import_registry(s, paths).created.get("streets", 0) in (0, 1)
    with session_scope(factory) as s:
        assert s.scalar(select(Grid.id)) is None
