"""Routing by building, by point and by Chinese text; never a silent guess."""

from __future__ import annotations

import pytest
from shapely.geometry import box, mapping
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import Building
from core.places import router as routing
from core.places.router import Router, RouterCache, RouteStatus, _GridEntry, _PlaceEntry


@pytest.fixture
def router(sqlite_demo_factory: sessionmaker[Session]) -> Router:
    with session_scope(sqlite_demo_factory) as session:
        return Router.from_session(session)


def test_by_building(router: Router) -> None:
    result = router.by_building("B-HPL-03-05")
    assert result.status is RouteStatus.matched and result.grid_code == "G-HPL-03"
    assert router.by_building("B-NOPE").status is RouteStatus.none


def test_point_inside_a_grid(router: Router) -> None:
    result = router.by_point(39.933326, 116.444599)  # the demo's 和平里小区1号楼
    assert result.status is RouteStatus.matched
    assert result.grid_code == "G-HPL-01"


def test_point_outside_every_grid_offers_nearest_but_no_match(router: Router) -> None:
    result = router.by_point(39.9306, 116.4505)  # the crossroads between the estates
    assert result.status is RouteStatus.none
    assert result.grid_code is None
    assert result.candidates, "nearby grids are offered as candidates"
    assert all(c.kind == "grid" for c in result.candidates)
    far = router.by_point(31.23, 121.47)  # Shanghai
    assert far.status is RouteStatus.none and far.candidates == []


def test_point_on_a_shared_border_is_ambiguous(router: Router) -> None:
    result = router.by_point(39.9325, 116.447)  # on the line between G-HPL-01 and G-HPL-02
    assert result.status is RouteStatus.ambiguous
    assert {c.grid_code for c in result.candidates} == {"G-HPL-01", "G-HPL-02"}
    assert result.grid_code is None


@pytest.mark.parametrize(
    ("text", "grid"),
    [
        ("和平里小区3号楼", "G-HPL-01"),
        ("和平里3栋", "G-HPL-01"),
        ("樱花园5栋2单元", "G-HPL-03"),
        ("樱花园小区五号楼二单元301室", "G-HPL-03"),
        ("和平小区东门", "G-HPL-02"),  # 和平里 typed without 里
        ("和平里小区东门那儿", "G-HPL-02"),
    ],
)
def test_text_simplified(router: Router, text: str, grid: str) -> None:
    result = router.by_text(text)
    assert result.status is RouteStatus.matched, result.as_dict()
    assert result.grid_code == grid


@pytest.mark.parametrize(
    ("text", "grid"),
    [("和平裡小區東門", "G-HPL-02"), ("櫻花園五號樓", "G-HPL-03"), ("和平里３号楼", "G-HPL-01")],
)
def test_text_traditional_and_full_width(router: Router, text: str, grid: str) -> None:
    result = router.by_text(text)
    assert result.status is RouteStatus.matched, result.as_dict()
    assert result.grid_code == grid


def test_text_ambiguous_returns_candidates_from_every_estate(router: Router) -> None:
    result = router.by_text("3号楼")
    assert result.status is RouteStatus.ambiguous
    assert result.grid_code is None
    labels = {c.label for c in result.candidates}
    assert {"和平里小区3号楼", "樱花园小区3号楼"} <= labels
    assert len({c.grid_code for c in result.candidates}) >= 4
    gate = router.by_text("东门")
    assert gate.status is RouteStatus.ambiguous and len(gate.candidates) >= 2


def test_text_ambiguous_resolved_by_community_only_when_unique(router: Router) -> None:
    # Two estates of 和平里社区 have a 3号楼: still ambiguous, but only those two.
    result = router.by_text("3号楼", community_code="C-HPL")
    assert result.status is RouteStatus.ambiguous
    assert {c.community_code for c in result.candidates[:2]} == {"C-HPL"}


@pytest.mark.parametrize("text", ["火星基地99号楼", "阳光花园3号楼", "月球背面", "", "   ", "asdf"])
def test_text_unknown(router: Router, text: str) -> None:
    result = router.by_text(text)
    assert result.status is RouteStatus.none, result.as_dict()
    assert result.grid_code is None


def test_ten_thousand_grids_route_correctly() -> None:
    """A city-sized registry: every cell of a 100×100 grid of squares routes to itself."""
    size = 0.001
    grids = []
    for i in range(100):
        for j in range(100):
            poly = box(116 + i * size, 39 + j * size, 116 + (i + 1) * size, 39 + (j + 1) * size)
            from shapely.geometry import shape

            grids.append(_GridEntry(f"G{i:03d}{j:03d}", f"网格{i}-{j}", "C", shape(mapping(poly))))
    router = Router(grids, [_PlaceEntry("building", "B", "x", "G000000", "C", "1", "x", ("x",))])
    for i, j in [(0, 0), (37, 81), (99, 99), (50, 50)]:
        result = router.by_point(39 + (j + 0.5) * size, 116 + (i + 0.5) * size)
        assert result.status is RouteStatus.matched
        assert result.grid_code == f"G{i:03d}{j:03d}"
    corner = router.by_point(39 + 10 * size, 116 + 10 * size)  # where four squares meet
    assert corner.status is RouteStatus.ambiguous and len(corner.candidates) == 4


def test_router_cache_rebuilds_only_when_the_registry_changed(sqlite_demo_factory: sessionmaker[Session]) -> None:
    routers = RouterCache(sqlite_demo_factory, check_every=0.0)
    first = routers.get()
    assert routers.get() is first  # checked again, nothing changed: not rebuilt
    assert first.by_building("B-HPL-01-99").status is RouteStatus.none
    with session_scope(sqlite_demo_factory) as s:  # a building added (as a re-import would)
        seven = s.scalars(select(Building).where(Building.code == "B-HPL-01-07")).one()
        s.add(Building(code="B-HPL-01-99", grid_id=seven.grid_id, address="和平里小区99号楼", number="99"))
    second = routers.get()
    assert second is not first and second.by_building("B-HPL-01-99").status is RouteStatus.matched
    with session_scope(sqlite_demo_factory) as s:  # an address edited in place: same counts
        s.scalars(select(Building).where(Building.code == "B-HPL-01-99")).one().address = "和平里小区99号楼甲"
    third = routers.get()
    assert third is not second and third.by_building("B-HPL-01-99").best.label == "和平里小区99号楼甲"  # type: ignore[union-attr]

    slow = RouterCache(sqlite_demo_factory, check_every=3600.0)
    cached = slow.get()
    assert not slow.due()
    with session_scope(sqlite_demo_factory) as s:
        s.delete(s.scalars(select(Building).where(Building.code == "B-HPL-01-99")).one())
    assert slow.get() is cached  # not checked again before check_every


def test_router_cache_rebuilds_an_old_router_even_with_the_same_stamp(
        sqlite_demo_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    routers = RouterCache(sqlite_demo_factory, check_every=0.0)
    first = routers.get()
    assert routers.get() is first
    monkeypatch.setattr(routing, "ROUTER_MAX_AGE_SECONDS", 0.0)  # e.g. a hand-made SQL fix, ten minutes on
    assert routers.get() is not first


@pytest.mark.parametrize(
    ("text", "estate"),
    [("和平里1号楼门口的垃圾桶满了", "和平里小区"), ("樱花園5栋楼道灯坏了", "樱花园小区"),
     ("我住在樱花园小区，3号楼电梯坏了", "樱花园小区"), ("1号楼门口的垃圾桶满了", None), ("", None)],
)
def test_estate_named_anywhere_in_a_message(router: Router, text: str, estate: str | None) -> None:
    assert router.estate_named(text) == estate
    if estate is not None:  # with the estate, the building number names one building
        number = routing._BUILDING_RE.search(routing.normalise(text))
        assert number is not None
        assert router.by_text(f"{estate}{number.group(0)}").status is RouteStatus.matched
