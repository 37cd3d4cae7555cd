"""Closed months' figures kept (core.centre.kept) on SQLite and PostgreSQL: the same figures as
core.tickets.rates computes from the events, read back without computing, recomputed when a late
event changes a month's history (an answer, a transfer, a merge), never kept for an open month, and
never wrong when an event lands while they are computed. The figures page keeps what it computes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.centre import kept
from core.centre.figures import previous_month
from core.config import Settings
from core.db import read_scope, session_scope
from core.models import FigureVersion, Grid, KeptFigures, Ticket, utcnow
from core.tickets import rates, service, transfer, visit
from core.tickets.rate_reports import month_of
from tests.app.centre_helpers import ADMIN, TZ, file_ticket, link_for, person, sign_in
from tests.app.web_server import serving

MEMBER, SECRETARY = "P-0002", "P-0001"


def grids(factory: sessionmaker[Session]) -> dict[str, int]:
    with session_scope(factory) as s:
        return dict(s.execute(select(Grid.code, Grid.id).where(Grid.code.like("G-HPL-%"))).tuples().all())


def a_closed_month() -> tuple[datetime, datetime]:
    return month_of(utcnow() - timedelta(days=100), TZ)


def handled(factory: sessionmaker[Session], number: str, at: datetime, *, answer: int | None = None) -> None:
    """Claimed an hour after `at`, resolved the next day, rated when `answer` is given."""
    with session_scope(factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        service.claim(s, tk.id, person(s, MEMBER), now=at + timedelta(hours=1))
        service.resolve(s, tk.id, person(s, MEMBER), "已处理", now=at + timedelta(days=1))
        if answer is not None:
            visit.answer(s, tk.id, person(s, "P-0071"), solved=True, score=answer, tz=TZ,
                         now=at + timedelta(days=1, hours=2))


def read(factory: sessionmaker[Session], start: datetime, end: datetime, ids: list[int]
         ) -> tuple[dict[int | None, rates.Figures], kept.Keeper]:
    keeper = kept.Keeper()
    with read_scope(factory) as s:
        out = keeper.figures(s, start, end, ids)
    with session_scope(factory) as s:
        kept.save(s, keeper.fresh)
    return out, keeper


def direct(factory: sessionmaker[Session], start: datetime, end: datetime, ids: list[int]) -> dict[int | None, rates.Figures]:
    with read_scope(factory) as s:
        found = rates.figures(s, start, end, ids)
    return {g: found.get(g, rates.Figures()) for g in ids}


def as_dicts(figs: dict[int | None, rates.Figures]) -> dict[int | None, dict[str, object]]:
    return {g: f.as_dict() for g, f in figs.items()}


def test_a_closed_month_is_kept_and_a_late_event_changes_it(demo_factory: sessionmaker[Session]) -> None:
    start, end = a_closed_month()
    g = grids(demo_factory)
    ids = sorted(g.values())
    day = start + timedelta(days=3)
    first = file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking", at=day)
    second = file_ticket(demo_factory, "B-HPL-01-03", "垃圾没人收", at=day + timedelta(hours=2))
    handled(demo_factory, first, day, answer=3)

    figs, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1 and len(keeper.fresh) == len(ids)
    assert as_dicts(figs) == as_dicts(direct(demo_factory, start, end, ids))
    assert figs[g["G-HPL-01"]].filed == 2 and figs[g["G-HPL-01"]].satisfied == 1
    again, keeper = read(demo_factory, start, end, ids)  # read back: nothing computed
    assert keeper.computed == 0 and keeper.fresh == [] and as_dicts(again) == as_dicts(figs)

    # a late event: today the community transfers the second ticket to the second grid
    with session_scope(demo_factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == second)).one()
        transfer.transfer(s, tk.id, person(s, ADMIN), g["G-HPL-02"], "在第二网格", tz=TZ)
    moved, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1
    assert (moved[g["G-HPL-01"]].filed, moved[g["G-HPL-02"]].filed) == (1, 1)
    assert as_dicts(moved) == as_dicts(direct(demo_factory, start, end, ids))
    # a late answer: given today, it counts in this month's 满意率, not in the kept month's ...
    third = file_ticket(demo_factory, "B-HPL-01-07", "又堵了", category="parking", at=day + timedelta(days=1))
    handled(demo_factory, third, day + timedelta(days=1))
    before, _ = read(demo_factory, start, end, ids)
    with session_scope(demo_factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == third)).one()
        visit.answer(s, tk.id, person(s, "P-0071"), solved=False, score=1, tz=TZ)  # 未解决: reopened today
    after, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1  # ... but its ticket's month is recomputed: its history changed
    assert after[g["G-HPL-01"]].answers == before[g["G-HPL-01"]].answers
    assert as_dicts(after) == as_dicts(direct(demo_factory, start, end, ids))
    # a merge today makes the duplicate drop out of its month
    with session_scope(demo_factory) as s:
        dup = s.scalars(select(Ticket).where(Ticket.number == third)).one()
        transfer.merge(s, dup.id, person(s, ADMIN), second, tz=TZ)
    merged, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1 and merged[g["G-HPL-01"]].filed == after[g["G-HPL-01"]].filed - 1
    assert as_dicts(merged) == as_dicts(direct(demo_factory, start, end, ids))


def test_an_event_while_they_are_computed_leaves_them_stale_not_wrong(demo_factory: sessionmaker[Session]) -> None:
    start, end = a_closed_month()
    g = grids(demo_factory)
    ids = sorted(g.values())
    number = file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking", at=start + timedelta(days=2))
    keeper = kept.Keeper()
    with read_scope(demo_factory) as s:
        keeper.figures(s, start, end, ids)
    with session_scope(demo_factory) as s:  # lands after the versions were read, before they are kept
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        transfer.transfer(s, tk.id, person(s, ADMIN), g["G-HPL-03"], "在第三网格", tz=TZ)
    with session_scope(demo_factory) as s:
        kept.save(s, keeper.fresh)
    figs, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1 and figs[g["G-HPL-03"]].filed == 1 and figs[g["G-HPL-01"]].filed == 0


def test_open_and_just_closed_months_are_not_kept(demo_factory: sessionmaker[Session]) -> None:
    ids = sorted(grids(demo_factory).values())
    now = utcnow()
    this, following = month_of(now, TZ)
    file_ticket(demo_factory, "B-HPL-01-07", "今天的", category="parking")
    keeper = kept.Keeper(now=now)
    with read_scope(demo_factory) as s:
        keeper.figures(s, this, following, ids)
        keeper.figures(s, this, following, ids)  # the same page asks twice: computed once
        assert keeper.computed == 1 and keeper.fresh == []
        # a month that ended less than a day ago is computed every time too
        just = kept.Keeper(now=following + timedelta(hours=12))
        just.figures(s, this, following, ids)
        assert just.fresh == []
        # the day's events write no versions (the busy path stays as it was)
        assert s.scalar(select(func.count()).select_from(FigureVersion)) == 0


def test_rows_of_other_rates_code_are_not_read(demo_factory: sessionmaker[Session]) -> None:
    start, end = a_closed_month()
    ids = sorted(grids(demo_factory).values())
    file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking", at=start + timedelta(days=2))
    read(demo_factory, start, end, ids)
    with session_scope(demo_factory) as s:
        for row in s.scalars(select(KeptFigures)):
            row.format = "older"
    _, keeper = read(demo_factory, start, end, ids)
    assert keeper.computed == 1
    assert kept.load({"filed": 1}) is None  # another Figures' fields


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def test_the_figures_page_keeps_its_closed_months(demo_factory: sessionmaker[Session], site: str) -> None:
    start, end = a_closed_month()
    file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking", at=start + timedelta(days=2))
    with httpx.Client(base_url=site, timeout=30, follow_redirects=False) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        page = c.get("/centre/figures")
        assert page.status_code == 200
        this, _ = month_of(utcnow(), TZ)
        assert this.strftime("%Y-%m") in page.text and start.strftime("%Y-%m") in page.text
        # the trend ends with this month, not the next one
        following = this.replace(year=this.year + this.month // 12, month=this.month % 12 + 1)
        assert following.strftime("%Y-%m") not in page.text
        with session_scope(demo_factory) as s:
            months = set(s.scalars(select(KeptFigures.month_start)))
            grid_count = s.scalar(select(func.count()).select_from(Grid).where(Grid.code.like("G-HPL-%")))
            rows = s.scalar(select(func.count()).select_from(KeptFigures))
        assert start.astimezone(TZ) in {m.astimezone(TZ) for m in months}
        assert len(months) >= 10 and rows == len(months) * grid_count
        assert c.get("/centre/figures").text.count(start.strftime("%Y-%m")) == page.text.count(start.strftime("%Y-%m"))
        csv_before = c.get("/centre/rates.csv", params={"month": start.strftime("%Y-%m")}).content
        assert csv_before.decode("utf-8-sig").splitlines()[1].split(",")[2] == "1"  # the total's 本月登记
        assert previous_month(start).astimezone(TZ) in {m.astimezone(TZ) for m in months}
