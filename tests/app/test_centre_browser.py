"""The command centre in a real browser: Debian's chromium driven by Selenium through
chromium-driver, against the real web app on a demo database. A community admin asks the bot
for /web (the real Application, an offline Bot API), opens the link, presses 登录, sees every grid
of the community on the map, opens a ticket, presses 督办 and sees the event, sees a change made in
chat appear within 10 s, transfers it (改派) to another grid, and exports the filtered list as CSV and reads it back. Screenshots go to
var/screenshots/ (the README shows the map)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import VAR_DIR, Settings
from core.db import session_scope
from core.models import Grid, Ticket, TicketEvent
from core.tickets import service
from tests.app.centre_helpers import ADMIN, WORKER, file_ticket, person
from tests.app.web_server import serving

SHOTS = VAR_DIR / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[WebDriver, Path]]:
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.fail("chromium and chromium-driver are needed (scripts/setup-envs.sh installs them: "
                    "apt-get install -y chromium chromium-driver)", pytrace=False)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver, downloads
    finally:
        with contextlib.suppress(Exception):  # already quit by the test
            driver.quit()


def _web_link(factory: sessionmaker[Session], base: str, telegram_id: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """/web in a private chat through the real Application; the link it sent, and no preview."""
    from tests.app.journey import journey

    monkeypatch.setenv("WEB_BASE_URL", base)

    async def scenario() -> str:
        async with journey(factory, "http://127.0.0.1:9") as j:
            got = await j.say(telegram_id, "/web")
            [sent] = [c for c in j.fake.calls if c.method.lower() == "sendmessage"
                      and c.params.get("chat_id") == telegram_id]
            preview = sent.params.get("link_preview_options")
            assert preview is not None and '"is_disabled": true' in str(preview).replace("True", "true").replace(
                "'", '"'), preview
            [text] = got
            found = re.search(r"https?://\S+", text)
            assert found is not None, text
            return found.group(0)

    return asyncio.run(scenario())


def _shot(driver: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000
    return path


def test_the_command_centre_in_a_browser(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path,
                                         browser: tuple[WebDriver, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    factory = sqlite_demo_factory
    driver, downloads = browser
    number = file_ticket(factory, "B-HPL-01-03", "楼道里堆满了纸箱，堵住了消防通道", category="fire_safety")
    file_ticket(factory, "B-HPL-01-04", "垃圾桶满了没人清")
    file_ticket(factory, "B-HPL-02-10", "路灯坏了", category="facilities")
    with session_scope(factory) as s:
        grids = list(s.scalars(select(Grid.name).where(Grid.code.like("G-HPL-%")).order_by(Grid.code)))
        admin_tg = person(s, ADMIN).telegram_id
        assert admin_tg is not None
    wait = WebDriverWait(driver, 15)
    with serving(Settings(web_cookie_secure=False), factory, media_dir=tmp_path / "media") as base:
        link = _web_link(factory, base, admin_tg, monkeypatch)
        assert link.startswith(f"{base}/centre/login/")

        # the link: a page with a button; the press signs in
        driver.get(link)
        wait.until(ec.element_to_be_clickable((By.ID, "login"))).click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#map canvas")))
        assert driver.current_url == f"{base}/centre/"
        # every grid of 和平里: drawn on the map (ECharts' own option) and listed beside it
        drawn = driver.execute_script(
            "var c = echarts.getInstanceByDom(document.getElementById('map'));"
            "return c.getOption().series[0].data.map(function (d) { return d.name; });")
        assert sorted(drawn) == sorted(grids)
        regions = driver.execute_script("return echarts.getMap('grids').geoJSON.features.length;")
        assert regions == len(grids)
        listed = [r.get_attribute("data-grid") for r in driver.find_elements(By.CSS_SELECTOR, "#grid-table tbody tr")]
        assert len(listed) == len(grids)
        assert driver.find_element(By.ID, "sum-open").text == "3"
        # the colour switch redraws by a rate
        driver.execute_script("var s = document.getElementById('colour'); s.value = 'satisfaction_rate';"
                              "s.dispatchEvent(new Event('change'));")
        assert driver.execute_script("return echarts.getInstanceByDom(document.getElementById('map'))"
                                     ".getOption().series[0].name;") == "satisfaction_rate"
        driver.execute_script("var s = document.getElementById('colour'); s.value = 'open';"
                              "s.dispatchEvent(new Event('change'));")
        time.sleep(0.3)
        _shot(driver, "centre-map")

        # the list, filtered, and one ticket
        driver.get(f"{base}/centre/tickets?category=fire_safety")
        rows = driver.find_elements(By.CSS_SELECTOR, "#tickets tbody tr")
        assert len(rows) == 1 and number in rows[0].text
        _shot(driver, "centre-tickets")
        driver.find_element(By.LINK_TEXT, number).click()
        wait.until(ec.presence_of_element_located((By.ID, "history")))
        assert "楼道里堆满了纸箱" in driver.page_source

        # 督办: the event, in the history
        driver.find_element(By.ID, "urge").click()
        wait.until(ec.presence_of_element_located((By.ID, "note")))
        assert "已督办" in driver.find_element(By.ID, "note").text
        kinds = [r.get_attribute("class") for r in driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
        assert "ev-urge" in kinds
        with session_scope(factory) as s:
            ticket_id = s.scalars(select(Ticket.id).where(Ticket.number == number)).one()
            assert s.scalar(select(func.count()).select_from(TicketEvent).where(
                TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "urge")) == 1

        # a change made in chat (the grid worker's 领单) shows within 10 s
        def claim_in_chat() -> None:
            with session_scope(factory) as s:
                service.claim(s, ticket_id, person(s, WORKER))

        started = time.monotonic()
        threading.Thread(target=claim_in_chat).start()
        WebDriverWait(driver, 10).until(
            lambda d: "史振华" in d.find_element(By.ID, "history").text)
        assert time.monotonic() - started < 10
        assert "处理中" in driver.find_element(By.ID, "number").text
        _shot(driver, "centre-ticket")

        # 改派 to the second grid with a reason: the claimer is released, the history says where it went
        Select(driver.find_element(By.ID, "transfer-grid")).select_by_visible_text(grids[1])
        driver.find_element(By.ID, "transfer-reason").send_keys("纸箱是二网格商户的")
        driver.find_element(By.ID, "transfer").click()
        wait.until(ec.presence_of_element_located((By.ID, "note")))
        assert "已完成" in driver.find_element(By.ID, "note").text
        last = driver.find_elements(By.CSS_SELECTOR, "#history tbody tr.ev-transfer")[-1].text
        assert f"改派：{grids[0]} → {grids[1]}" in last and "纸箱是二网格商户的" in last
        with session_scope(factory) as s:
            moved = s.get(Ticket, ticket_id)
            assert moved is not None and moved.claimed_by_id is None
            assert moved.grid_id == s.scalars(select(Grid.id).where(Grid.name == grids[1])).one()

        # the CSV of the filtered list, downloaded by the browser and read back
        driver.get(f"{base}/centre/tickets?q=%E8%B7%AF%E7%81%AF")  # 路灯
        driver.find_element(By.ID, "export").click()
        deadline = time.monotonic() + 15
        files: list[Path] = []
        while time.monotonic() < deadline:
            files = [p for p in downloads.iterdir() if p.suffix == ".csv"]
            if files:
                break
            time.sleep(0.2)
        assert files, "the CSV was not downloaded"
        content = files[0].read_bytes()
        assert content.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
        assert table[0][0] == "编号" and len(table) == 2 and table[1][2] == "公共设施" and "路灯坏了" in table[1]

        # the figures page draws its trend
        driver.get(f"{base}/centre/figures")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#trend canvas")))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#rates tbody tr")) == 1 + len(grids)
        _shot(driver, "centre-figures")

        # a phone's screen: the map page fits its width
        driver.set_window_size(390, 844)
        driver.get(f"{base}/centre/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#map canvas")))
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        _shot(driver, "centre-phone")
        driver.quit()  # its keep-alive connections closed before the server stops
