"""The command centre's 共建共治 page over real HTTP (SQLite and PostgreSQL): 双报到 members with this
month's hours, the open 三张清单 and this month's 议事 of the person's own grids; another community's
items are not shown, names only with roster.view, no individual vote, and no page without a login."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import PERMISSIONS, Role
from core.config import Settings
from core.db import session_scope
from core.models import (
    BaodaoRegistration,
    Building,
    Community,
    Consultation,
    ConsultationVote,
    Grid,
    Need,
    NeedStatus,
    Person,
    Project,
    ProjectStatus,
    RegistrationStatus,
    Resource,
    Shift,
    ShiftSignup,
    utcnow,
)
from core.tickets.rate_reports import month_of
from tests.app.centre_helpers import ADMIN, TZ, WORKER, link_for, person, sign_in
from tests.app.web_server import serving

OURS = "P-0003"  # 文爱华, lives in 和平里第一网格
THEIRS = "P-0031"  # 常国强, lives in 青年湖第一网格
VOTER = "P-0071"  # 戴春生


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False)


def _register(s: Session, code: str, building: str, organisation: str) -> Person:
    member = person(s, code)
    b = s.scalars(select(Building).where(Building.code == building)).one()
    grid = s.get(Grid, b.grid_id)
    assert grid is not None
    s.add(BaodaoRegistration(person_id=member.id, community_id=grid.community_id, grid_id=grid.id, building_id=b.id,
                             organisation=organisation, work_unit=organisation, status=RegistrationStatus.approved,
                             decided_at=utcnow() - timedelta(days=40)))
    return member


def _grid(s: Session, code: str) -> Grid:
    return s.scalars(select(Grid).where(Grid.code == code)).one()


def seed(factory: sessionmaker[Session]) -> None:
    """Items of both communities: 和平里 (the admin's and the worker's) and 青年湖."""
    start, _ = month_of(utcnow(), TZ)
    with session_scope(factory) as s:
        ours = _register(s, OURS, "B-HPL-01-01", "市税务局机关党委")
        _register(s, THEIRS, "B-QNH-01-03", "区法院机关党委")
        hpl, qnh = _grid(s, "G-HPL-01"), _grid(s, "G-QNH-01")
        shift = Shift(community_id=hpl.community_id, title="社区巡逻", place="一号院", capacity=5,
                      starts_at=start + timedelta(hours=1), ends_at=start + timedelta(hours=3, minutes=30))
        s.add(shift)
        s.flush()
        s.add(ShiftSignup(shift_id=shift.id, person_id=ours.id))
        s.add_all([Need(community_id=hpl.community_id, grid_id=hpl.id, category="老人助餐", place="和平里一号院",
                        beneficiaries="独居老人"),
                   Need(community_id=qnh.community_id, grid_id=qnh.id, category="楼道照明", place="青年湖三号楼",
                        beneficiaries="全楼居民")])
        matched = Need(community_id=hpl.community_id, grid_id=hpl.id, category="儿童托管", place="和平里七号楼",
                       beneficiaries="双职工家庭", status=NeedStatus.met)
        s.add(matched)
        s.flush()
        resource = s.scalars(select(Resource).where(Resource.code == "R-HPS-01")).one()
        s.add(Project(community_id=hpl.community_id, need_id=matched.id, resource_id=resource.id,
                      due=date(2030, 1, 1), status=ProjectStatus.under_way))
        closed = Consultation(grid_id=hpl.id, scope_label="和平里第一网格", question="是否更换单元门禁",
                              deadline=start + timedelta(minutes=1), closed_at=start + timedelta(minutes=2),
                              eligible=10, participants=4)
        s.add_all([closed,
                   Consultation(grid_id=hpl.id, scope_label="和平里第一网格", question="是否在一号院加装充电桩",
                                deadline=utcnow() + timedelta(days=3)),
                   Consultation(grid_id=qnh.id, scope_label="青年湖第一网格", question="是否设立共享书屋",
                                deadline=utcnow() + timedelta(days=3))])
        s.flush()
        s.add(ConsultationVote(consultation_id=closed.id, person_id=person(s, VOTER).id, choice=0))


def test_an_admin_sees_their_community_only(demo_factory: sessionmaker[Session], site: str) -> None:
    seed(demo_factory)
    with client(site) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        assert 'href="/centre/cogov"' in c.get("/centre/").text  # in the nav bar
        page = c.get("/centre/cogov")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        html = page.text
    # 双报到: the member by name with the shift's 2.5 hours
    assert "文爱华" in html and "<td>2.5</td>" in html
    # 三张清单: 和平里's resources and needs, the project under way
    for shown in ("义诊和健康讲座", "课后活动教室", "和平里一号院", "和平里七号楼", "实施中（1）"):
        assert shown in html, shown
    # 议事: the open one, the closed one with 4/10 and 40%
    assert "是否在一号院加装充电桩" in html and "是否更换单元门禁" in html
    assert "4/10" in html and "40%" in html
    # nothing of 青年湖, and no voter
    for hidden in ("常国强", "法律咨询", "青年湖三号楼", "是否设立共享书屋", "戴春生"):
        assert hidden not in html, hidden


def test_a_grid_worker_sees_their_grid(demo_factory: sessionmaker[Session], site: str) -> None:
    seed(demo_factory)
    with client(site) as c:
        sign_in(c, link_for(demo_factory, WORKER, site))
        html = c.get("/centre/cogov").text
    assert "和平里第一网格" in html and "和平里第二网格" not in html
    assert "文爱华" in html and "是否更换单元门禁" in html
    assert "常国强" not in html and "是否设立共享书屋" not in html


def test_a_street_admin_sees_the_street(demo_factory: sessionmaker[Session], site: str) -> None:
    from core.registry import grants

    seed(demo_factory)
    with session_scope(demo_factory) as s:
        s.add(Person(telegram_id=930000011, display_name="街道干部", code="P-ST01"))
        s.flush()
        grants.grant(s, grants.resolve(s, "930000011", "street_admin", street="ST-HP"))
        assert s.scalar(select(Community.id).where(Community.code == "C-QNH")) is not None
    with client(site) as c:
        sign_in(c, link_for(demo_factory, "P-ST01", site))
        html = c.get("/centre/cogov").text
    for shown in ("文爱华", "常国强", "法律咨询", "青年湖三号楼", "是否设立共享书屋"):
        assert shown in html, shown
    assert "戴春生" not in html


def test_names_only_with_the_roster(demo_factory: sessionmaker[Session], site: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seed(demo_factory)
    monkeypatch.setitem(PERMISSIONS, "roster.view", frozenset({Role.secretary}))
    with client(site) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        html = c.get("/centre/cogov").text
    assert "文爱华" not in html and "仅显示人数" in html
    assert "<td>1</td>" in html  # the count is still there


def test_not_without_a_login(demo_factory: sessionmaker[Session], site: str) -> None:
    seed(demo_factory)
    with client(site) as c:
        refused = c.get("/centre/cogov")
    assert refused.status_code == 401
    assert "文爱华" not in refused.text and "是否更换单元门禁" not in refused.text
