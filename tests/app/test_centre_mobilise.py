"""The command centre's 战时 page over real HTTP (SQLite and PostgreSQL): the commander sees the
incident's grids on the map, red where nobody is on site, the answers per grid and the open tasks,
and exports the report as CSV (audited); a grid worker sees their grid only; another community's
admin sees none of it; nothing without a login. And in Debian's chromium: the map's colours, and a
check-in made in chat turning a grid green within 10 s."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import session_scope
from core.mobilise import answers, checkins, declare, tasks
from core.models import Answer, AreaLevel, AuditEntry, Grid, IncidentKind, TaskKind, utcnow
from core.places.router import Router
from tests.app.centre_helpers import ADMIN, TZ, WORKER, link_for, person, sign_in
from tests.app.test_centre_browser import SHOTS, browser  # noqa: F401 - the chromium fixture
from tests.app.web_server import serving

IN_GRID_1 = (39.932442, 116.445302)  # B-HPL-01-05


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False)


def seed(factory: sessionmaker[Session]) -> int:
    """An incident over 和平里's first two grids: 梁海涛 on site in grid 1, a task for grid 2."""
    now = utcnow() - timedelta(minutes=20)
    with session_scope(factory) as s:
        grids = list(s.scalars(select(Grid.id).where(Grid.code.in_(("G-HPL-01", "G-HPL-02"))).order_by(Grid.code)))
        incident, _ = declare.declare(s, person(s, ADMIN), IncidentKind.snow, AreaLevel.grids, grid_ids=grids,
                                      order="清扫主路积雪", now=now, tz=TZ)
        liang = person(s, "P-0002")
        answers.answer(s, liang, incident.id, Answer.coming, now=now, tz=TZ)
        answers.answer(s, person(s, "P-0009"), incident.id, Answer.cannot, now=now, tz=TZ)
        checkins.check_in(s, Router.from_session(s), liang, incident.id, *IN_GRID_1, now=now + timedelta(minutes=5),
                          tz=TZ)
        tasks.post(s, person(s, ADMIN), incident.id, grids[1], TaskKind.other, "清扫三号楼门前坡道", now=now)
        return incident.id


def test_the_commander_follows_the_incident_and_exports_it(demo_factory: sessionmaker[Session], site: str) -> None:
    number = seed(demo_factory)
    with client(site) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        assert 'href="/centre/mobilise"' in c.get("/centre/").text  # in the nav bar
        page = c.get("/centre/mobilise")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        html = page.text
        data = json.loads(re.search(r'<script id="mobilise-data" type="application/json">(.*?)</script>', html,
                                    re.S).group(1))  # type: ignore[union-attr]
        live = c.get(f"/centre/mobilise.json?incident={number}").json()
        exported = c.get(f"/centre/mobilise/{number}/report.csv")
        missing = c.get("/centre/mobilise/999/report.csv")
    assert f"#{number} 除雪 · 和平里第一网格、和平里第二网格" in html and "清扫主路积雪" in html
    assert "⚠ 还没有人在岗的网格：和平里第二网格" in html, html
    assert "清扫三号楼门前坡道" in html  # the open task
    by_grid = {g["code"]: g for g in data["grids"]}
    assert set(by_grid) == {"G-HPL-01", "G-HPL-02"}
    assert (by_grid["G-HPL-01"]["on_site"], by_grid["G-HPL-01"]["coming"], by_grid["G-HPL-01"]["called"]) == (1, 1, 9)
    assert (by_grid["G-HPL-02"]["on_site"], by_grid["G-HPL-02"]["cannot"], by_grid["G-HPL-02"]["open_tasks"]) == (0, 1, 1)
    assert len(data["geojson"]["features"]) == 2 and data["geojson"]["features"][0]["geometry"]["type"] == "Polygon"
    assert live["grids"] == data["grids"]
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["incident", "grid_code", "grid", "person"]
    assert [str(number), "G-HPL-01", "和平里第一网格", "梁海涛"] == rows[2][:4], rows
    assert rows[-1][2] == "合计" and rows[-1][4] == "16"
    assert missing.status_code == 404
    with session_scope(demo_factory) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "mobilise.export")) == 1


def test_a_grid_worker_sees_their_grid_and_another_admin_nothing(demo_factory: sessionmaker[Session],
                                                                  site: str) -> None:
    number = seed(demo_factory)
    with client(site) as c:
        sign_in(c, link_for(demo_factory, WORKER, site))
        html = c.get("/centre/mobilise").text
        live = c.get(f"/centre/mobilise.json?incident={number}").json()
    assert "和平里第一网格" in html and 'data-grid="G-HPL-02"' not in html and "清扫三号楼门前坡道" not in html
    assert [g["code"] for g in live["grids"]] == ["G-HPL-01"]
    with client(site) as c:
        sign_in(c, link_for(demo_factory, "P-0070", site))  # 青年湖社区's admin
        html = c.get("/centre/mobilise").text
        assert c.get(f"/centre/mobilise.json?incident={number}").status_code == 404
        assert c.get(f"/centre/mobilise/{number}/report.csv").status_code == 404
    assert "没有您能查看的动员。" in html and "清扫主路积雪" not in html
    with client(site) as c:
        assert c.get("/centre/mobilise").status_code == 401
        assert c.get(f"/centre/mobilise/{number}/report.csv").status_code == 401


def test_the_mobilise_map_in_a_browser(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path,
                                       browser: tuple[Any, Path]) -> None:  # noqa: F811 - the fixture
    """Debian's chromium draws the incident's grids: the manned one green, the other red; a check-in
    made in chat turns the second green within 10 s (the page polls); no error in the console."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    factory = sqlite_demo_factory
    number = seed(factory)
    driver, _ = browser
    colour = ("var c = echarts.getInstanceByDom(document.getElementById('mobilise-map'));"
              "var d = c.getOption().series[0].data; var m = c.getModel().getSeriesByIndex(0).getData();"
              "return d.map(function (x, i) { return [x.name, x.value, m.getItemVisual(i, 'style').fill]; });")
    with serving(Settings(web_cookie_secure=False), factory, media_dir=tmp_path / "media") as base:
        driver.get(link_for(factory, ADMIN, base))
        WebDriverWait(driver, 15).until(ec.element_to_be_clickable((By.ID, "login"))).click()
        WebDriverWait(driver, 15).until(ec.presence_of_element_located((By.ID, "map")))
        driver.get(f"{base}/centre/mobilise")
        WebDriverWait(driver, 15).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#mobilise-map canvas")))
        drawn = {name: (value, fill) for name, value, fill in driver.execute_script(colour)}
        assert drawn["和平里第一网格"] == (1, "#50a37a") and drawn["和平里第二网格"] == (0, "#d94e5d"), drawn
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.execute_script("document.getElementById('mobilise-map').scrollIntoView();")
        driver.save_screenshot(str(SHOTS / "centre-mobilise.png"))  # README's picture
        with session_scope(factory) as s:  # someone checks in in the second grid, in chat
            checkins.check_in(s, Router.from_session(s), person(s, "P-0010"), number, 39.933474, 116.448238,
                              now=utcnow(), tz=TZ)
        WebDriverWait(driver, 10).until(
            lambda d: {n: f for n, _, f in d.execute_script(colour)}["和平里第二网格"] == "#50a37a")
        assert driver.find_element(By.ID, "sum-on-site").text == "2" and driver.find_element(By.ID, "sum-empty").text == "0"
        assert driver.find_element(By.ID, "empty").text == "各网格都有人在岗"
        row = driver.find_element(By.CSS_SELECTOR, '#mobilise-grids tr[data-grid="G-HPL-02"]')
        assert row.text.split()[-2:] == ["1", "1"] and row.get_attribute("class") == ""  # on site 1, a task
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and e.get("source") != "network"]
        assert errors == [], errors
