"""The command centre's 共享空间 page over real HTTP (SQLite and PostgreSQL), on the spaces' set
clock: the spaces of the person's own community with the next days' bookings; bookers named only
to a space's managers (audited); the booking form (CSRF, a slot taken meanwhile, outside the
opening hours, over the capacity); 批准, 拒绝 with a reason and 未到 by managers; another
community's spaces and bookings are out of reach, and nothing without a login."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import session_scope
from core.models import AuditEntry, Booking, BookingSource, BookingStatus, Space
from core.spaces import booking, clock
from core.spaces.rules import Rules
from tests.app.centre_helpers import ADMIN, WORKER, csrf_of, link_for, person, sign_in
from tests.app.test_spaces import MONDAY, TZ, Frozen
from tests.app.web_server import serving

SECRETARY, RESIDENT, OTHER_ADMIN = "P-0001", "P-0071", "P-0070"


@pytest.fixture
def spaces_clock(monkeypatch: pytest.MonkeyPatch) -> Frozen:
    """The spaces' clock (core.spaces.clock) at MONDAY: the server runs in this process."""
    f = Frozen()
    monkeypatch.setattr(clock, "now", f)
    return f


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False)


def signed_in(factory: sessionmaker[Session], base: str, code: str, stack: ExitStack) -> httpx.Client:
    c = stack.enter_context(client(base))
    assert sign_in(c, link_for(factory, code, base)).status_code == 303
    return c


def space_id(factory: sessionmaker[Session], code: str) -> int:
    with session_scope(factory) as s:
        return s.scalars(select(Space.id).where(Space.code == code)).one()


def book(factory: sessionmaker[Session], code: str, space: str, start: datetime, purpose: str) -> int:
    room = space_id(factory, space)
    with session_scope(factory) as s:
        row = booking.book(s, person(s, code), room, start=start, end=start + timedelta(hours=1),
                           purpose=purpose, people=4, source=BookingSource.chat, rules=Rules(), tz=TZ, now=MONDAY)
        return row.id


def slot(start: datetime, hours: int = 1) -> str:
    return f"{int(start.timestamp())}-{int((start + timedelta(hours=hours)).timestamp())}"


def status_of(factory: sessionmaker[Session], booking_id: int) -> BookingStatus:
    with session_scope(factory) as s:
        row = s.get(Booking, booking_id)
        assert row is not None
        return row.status


def test_spaces_page_booking_and_managers(demo_factory: sessionmaker[Session], site: str,
                                          spaces_clock: Frozen) -> None:
    with ExitStack() as stack:
        scenario(demo_factory, site, spaces_clock, stack)


def scenario(factory: sessionmaker[Session], site: str, frozen: Frozen, stack: ExitStack) -> None:
    tuesday = datetime(2026, 12, 8, 10, 0, tzinfo=TZ)
    ours = book(factory, RESIDENT, "SP-HPL-AR", tuesday, "太极拳")
    theirs = book(factory, OTHER_ADMIN, "SP-QNH-MR", tuesday, "青年湖党委会")
    assert stack.enter_context(client(site)).get("/centre/spaces").status_code == 401

    admin = signed_in(factory, site, ADMIN, stack)
    page = admin.get("/centre/spaces")
    assert page.status_code == 200, page.text
    assert "党群服务中心会议室" in page.text and "一号楼活动室" in page.text and "邻里书吧" in page.text
    assert "太极拳" in page.text and "戴春生（居民）" in page.text  # the admin manages every space of 和平里
    assert "青年湖党委会" not in page.text and "青年湖社区" not in page.text
    with session_scope(factory) as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "space.bookers")) is not None

    worker = signed_in(factory, site, WORKER, stack)  # manages the 活动室 only; books nothing
    page = worker.get("/centre/spaces")
    assert "戴春生（居民）" in page.text  # the 活动室's booker, to its manager
    assert page.text.count('action="/centre/spaces/') == page.text.count("/noshow")  # no booking form
    secretary = signed_in(factory, site, SECRETARY, stack)
    page = secretary.get("/centre/spaces")
    assert "戴春生" not in page.text and "太极拳" in page.text and ">居民<" in page.text  # not a manager
    room = space_id(factory, "SP-HPL-MR")
    assert f'action="/centre/spaces/{room}/book"' in page.text

    # the secretary books the 会议室 for the branch: CSRF first
    wednesday = datetime(2026, 12, 9, 14, 30, tzinfo=TZ)
    form = {"slot": slot(wednesday), "purpose": "支委会", "people": "7"}
    assert secretary.post(f"/centre/spaces/{room}/book", data=form).status_code == 403
    form["csrf"] = csrf_of(page.text)
    done = secretary.post(f"/centre/spaces/{room}/book", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/centre/spaces?done=pending", done.text
    with session_scope(factory) as s:
        pending = s.scalars(select(Booking).where(Booking.purpose == "支委会")).one()
        assert (pending.source, pending.organisation) == (BookingSource.centre, "和平里第一网格党支部")
    again = secretary.post(f"/centre/spaces/{room}/book", data={**form, "purpose": "党课"})
    assert again.status_code == 409 and "已经被预约了" in again.text and "最近的空闲时段：12月9日 周三 15:30-16:30" in again.text
    early = secretary.post(f"/centre/spaces/{room}/book", data={**form, "slot": slot(wednesday.replace(hour=7))})
    assert early.status_code == 403 and "不在党群服务中心会议室的开放时间内" in early.text
    crowd = secretary.post(f"/centre/spaces/{room}/book", data={**form, "slot": slot(wednesday.replace(hour=9, minute=30)),
                                                                "people": "40"})
    assert crowd.status_code == 403 and "最多容纳20人" in crowd.text
    not_theirs = secretary.post(f"/centre/spaces/{space_id(factory, 'SP-QNH-MR')}/book", data=form)
    assert not_theirs.status_code == 404

    # the secretary may not approve; the admin approves, and refuses another with a reason
    refused = secretary.post(f"/centre/spaces/bookings/{pending.id}/approve", data={"csrf": form["csrf"]})
    assert refused.status_code == 403 and "不是党群服务中心会议室的管理员" in refused.text
    csrf = csrf_of(admin.get("/centre/spaces").text)
    assert f"/centre/spaces/bookings/{pending.id}/approve" in admin.get("/centre/spaces").text
    ok = admin.post(f"/centre/spaces/bookings/{pending.id}/approve", data={"csrf": csrf})
    assert ok.status_code == 303 and status_of(factory, pending.id) is BookingStatus.confirmed
    second = book(factory, SECRETARY, "SP-HPL-MR", datetime(2026, 12, 10, 9, 30, tzinfo=TZ), "党员大会")
    no_reason = admin.post(f"/centre/spaces/bookings/{second}/refuse", data={"csrf": csrf})
    assert no_reason.status_code == 403 and "拒绝时请写明理由" in no_reason.text
    assert status_of(factory, second) is BookingStatus.pending
    admin.post(f"/centre/spaces/bookings/{second}/refuse", data={"csrf": csrf, "reason": "会议室维修"})
    with session_scope(factory) as s:
        row = s.get(Booking, second)
        assert row is not None and (row.status, row.reason) == (BookingStatus.refused, "会议室维修")
    assert admin.post(f"/centre/spaces/bookings/{theirs}/approve", data={"csrf": csrf}).status_code == 404

    # 未到 once the resident's booking has started, by the 活动室's manager
    frozen.set(tuesday + timedelta(minutes=20))
    page = worker.get("/centre/spaces")
    assert f"/centre/spaces/bookings/{ours}/noshow" in page.text
    marked = worker.post(f"/centre/spaces/bookings/{ours}/noshow", data={"csrf": csrf_of(page.text)})
    assert marked.status_code == 303 and status_of(factory, ours) is BookingStatus.no_show
    assert re.search(r"未到", worker.get("/centre/spaces").text)
