"""改派 / 接手 / 合并 in the command centre over real HTTP (SQLite and PostgreSQL): the same checks,
events and outbox notices as the chat buttons (tests/app/test_transfer.py, which calls
core.tickets.transfer directly), every refusal shown in Chinese on the ticket page with nothing
changed, and the community's triage queue in the web ticket list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import session_scope
from core.messages import t
from core.messaging import buttons
from core.models import Grid, OutboxMessage, Ticket, TicketEvent, TicketFollower, TicketStatus
from core.tickets import service, visit
from tests.app.centre_helpers import ADMIN, TZ, csrf_of, file_ticket, link_for, person, sign_in
from tests.app.web_server import serving

S = TicketStatus
SECRETARY = "P-0001"  # secretary of 和平里第一网格党支部 (G-HPL-01)
MEMBER = "P-0002"  # a member of that branch
ADMIN_QNH = "P-0070"  # community admin of 青年湖社区
GROUP_1, GROUP_2 = -1001000000001, -1001000000002  # the branch groups of G-HPL-01 and G-HPL-02
REPORTER, ADMIN_TG, MEMBER_TG = 700000071, 700000069, 700000002


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


@contextmanager
def signed_in(factory: sessionmaker[Session], base: str, code: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as c:
        assert sign_in(c, link_for(factory, code, base)).status_code == 303
        yield c


def grid_id(factory: sessionmaker[Session], code: str) -> int:
    with session_scope(factory) as s:
        return s.scalars(select(Grid.id).where(Grid.code == code)).one()


def state(factory: sessionmaker[Session], number: str) -> tuple[Any, ...]:
    """Everything a refused change must leave as it was: the ticket's status, grid and claimer,
    its events, and the outbox."""
    with session_scope(factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        events = s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == tk.id))
        outbox = s.scalar(select(func.count()).select_from(OutboxMessage))
        return tk.status, tk.grid_id, tk.claimed_by_id, tk.duplicate_of_id, events, outbox


def mark(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as s:
        return s.scalar(select(func.max(OutboxMessage.id))) or 0


def texts(factory: sessionmaker[Session], chat_id: int, since: int) -> list[str]:
    with session_scope(factory) as s:
        return [buttons.plain(s, m.payload)["text"] for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.chat_id == chat_id, OutboxMessage.id > since)
            .order_by(OutboxMessage.id))]


def last_events(factory: sessionmaker[Session], number: str, n: int) -> list[tuple[Any, ...]]:
    with session_scope(factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        rows = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == tk.id).order_by(TicketEvent.id)).all()
        return [(e.kind, e.from_status, e.to_status, e.actor_id, e.detail) for e in rows[-n:]]


def person_id(factory: sessionmaker[Session], code: str) -> int:
    with session_scope(factory) as s:
        return person(s, code).id


def refused(c: httpx.Client, number: str, what: str, data: dict[str, str], text: str) -> None:
    answer = c.post(f"/centre/tickets/{number}/{what}", data=data)
    assert answer.status_code == 403, (what, data, answer.status_code)
    assert text in answer.text, (what, data)
    assert 'id="note"' in answer.text and number in answer.text  # on the ticket's page, not an error page


def test_the_admin_transfers_on_the_web_as_in_chat(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-07", "7号楼门口的消防通道被私家车堵了", category="parking")
    own, second, qnh = (grid_id(demo_factory, code) for code in ("G-HPL-01", "G-HPL-02", "G-QNH-01"))
    with signed_in(demo_factory, site, ADMIN) as c:
        page = c.get(f"/centre/tickets/{number}")
        csrf = csrf_of(page.text)
        form = page.text.split(f'action="/centre/tickets/{number}/transfer"')[1].split("</form>")[0]
        # the picker offers the community's other grids: not its own, not another community's
        assert f'value="{second}"' in form and f'value="{own}"' not in form and f'value="{qnh}"' not in form
        before = state(demo_factory, number)
        refused(c, number, "transfer", {"csrf": csrf, "grid": str(own), "reason": "试试"}, "工单已在和平里第一网格")
        refused(c, number, "transfer", {"csrf": csrf, "grid": str(qnh), "reason": "在青年湖"}, "不在本社区")
        refused(c, number, "transfer", {"csrf": csrf, "grid": str(second), "reason": "  "}, "请写明改派原因")
        refused(c, number, "transfer", {"csrf": csrf, "grid": "", "reason": "去别处"}, "没有找到这个网格")
        refused(c, number, "transfer", {"csrf": csrf, "grid": "99999", "reason": "去别处"}, "没有找到这个网格")
        for data in ({"grid": str(second), "reason": "商户在第二网格"},
                     {"csrf": "forged", "grid": str(second), "reason": "商户在第二网格"}):
            assert c.post(f"/centre/tickets/{number}/transfer", data=data).status_code == 403
        assert state(demo_factory, number) == before

        since = mark(demo_factory)
        done = c.post(f"/centre/tickets/{number}/transfer", data={"csrf": csrf, "grid": str(second),
                                                                  "reason": "商户在第二网格"})
        assert done.status_code == 303
        shown = c.get(done.headers["location"])  # the admin still sees it (the whole community)
        assert shown.status_code == 200 and t("web.done") in shown.text and "和平里第二网格" in shown.text
        assert "商户在第二网格" in shown.text  # the history's note, and which grid to which
        assert "改派：和平里第一网格 → 和平里第二网格" in shown.text
    assert last_events(demo_factory, number, 1) == [
        ("transfer", S.accepted, S.accepted, person_id(demo_factory, ADMIN), {"from": own, "to": second})]
    status, grid, *_ = state(demo_factory, number)
    assert (status, grid) == (S.accepted, second)
    # the same notices as the chat's 改派: a line to the first branch, the card to the second, the resident
    assert texts(demo_factory, GROUP_1, since) == [t("transfer.line_out", number=number, handler="汤同志",
                                                     grid="和平里第二网格", note="商户在第二网格")]
    [card] = texts(demo_factory, GROUP_2, since)
    assert card.startswith(f"【改派】{number} 由 和平里第一网格 转来（汤同志）：商户在第二网格")
    assert texts(demo_factory, REPORTER, since) == [t("transfer.notify", number=number, grid="和平里第二网格")]


def test_a_secretary_transfers_out_of_their_view(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-07", "商户门前的货车挡路", category="parking")
    second = grid_id(demo_factory, "G-HPL-02")
    with signed_in(demo_factory, site, SECRETARY) as c:
        page = c.get(f"/centre/tickets/{number}")
        assert 'id="take-over"' not in page.text and "/merge" not in page.text  # the admin's, not the branch's
        # a non-admin pressing 接手 (a hand-made POST) is refused, in Chinese, with nothing changed
        other = file_ticket(demo_factory, "B-HPL-01-03", "另一件")
        before = state(demo_factory, number)
        refused(c, number, "take_over", {"csrf": csrf_of(page.text)}, "只有社区管理员可以接手")
        refused(c, number, "merge", {"csrf": csrf_of(page.text), "original": other}, "合并")
        assert state(demo_factory, number) == before
        done = c.post(f"/centre/tickets/{number}/transfer", data={"csrf": csrf_of(page.text), "grid": str(second),
                                                                  "reason": "在第二网格"})
        assert done.status_code == 303
        # the ticket left the secretary's grid: they land on their list, told where it went
        landing = c.get(done.headers["location"])
        assert landing.status_code == 200
        assert t("web.transferred", number=number, grid="和平里第二网格") in landing.text
        assert c.get(f"/centre/tickets/{number}").status_code == 404
    assert state(demo_factory, number)[1] == second


def test_another_community_sees_nothing_to_change(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking")
    before = state(demo_factory, number)
    with signed_in(demo_factory, site, ADMIN_QNH) as c:
        csrf = csrf_of(c.get("/centre/tickets").text)
        for what, data in (("transfer", {"grid": str(grid_id(demo_factory, "G-QNH-01")), "reason": "归我们"}),
                           ("take_over", {}), ("merge", {"original": number})):
            answer = c.post(f"/centre/tickets/{number}/{what}", data={"csrf": csrf, **data})
            assert answer.status_code == 404 and t("web.not_found") in answer.text
    assert state(demo_factory, number) == before


def test_the_admin_takes_over_on_the_web(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking")
    with session_scope(demo_factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        service.claim(s, tk.id, person(s, MEMBER))
    admin = person_id(demo_factory, ADMIN)
    with signed_in(demo_factory, site, ADMIN) as c:
        page = c.get(f"/centre/tickets/{number}")
        assert 'id="take-over"' in page.text
        assert c.post(f"/centre/tickets/{number}/take_over").status_code == 403  # no CSRF token
        since = mark(demo_factory)
        done = c.post(f"/centre/tickets/{number}/take_over", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
        shown = c.get(done.headers["location"]).text
        assert t("web.done") in shown and "汤嘉懿" in shown
        assert last_events(demo_factory, number, 2) == [("status", S.claimed, S.accepted, admin, None),
                                                          ("status", S.accepted, S.claimed, admin, None)]
        assert texts(demo_factory, MEMBER_TG, since) == [t("take.notice", number=number, handler="汤同志")]
        assert texts(demo_factory, REPORTER, since) == [t("notify.claimed", number=number, handler="汤同志")]
        # pressed again (a second tab): refused on the page, nothing more happens
        before = state(demo_factory, number)
        refused(c, number, "take_over", {"csrf": csrf_of(page.text)}, "已由您办理")
        assert state(demo_factory, number) == before


def test_the_admin_merges_on_the_web(demo_factory: sessionmaker[Session], site: str) -> None:
    original = file_ticket(demo_factory, "B-HPL-01-07", "消防通道被堵", category="parking")
    duplicate = file_ticket(demo_factory, "B-HPL-01-07", "消防通道又被堵了", category="parking")
    closed = file_ticket(demo_factory, "B-HPL-01-03", "垃圾没人收")
    with session_scope(demo_factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == closed)).one()
        service.claim(s, tk.id, person(s, MEMBER))
        service.resolve(s, tk.id, person(s, MEMBER), "已清运")
        visit.answer(s, tk.id, person(s, "P-0071"), solved=True, score=3, tz=TZ)
        assert tk.status is S.closed
    with signed_in(demo_factory, site, ADMIN) as c:
        page = c.get(f"/centre/tickets/{duplicate}")
        csrf = csrf_of(page.text)
        before = state(demo_factory, duplicate)
        refused(c, duplicate, "merge", {"csrf": csrf, "original": closed}, "不能作为原工单")
        refused(c, duplicate, "merge", {"csrf": csrf, "original": duplicate}, "自己")
        refused(c, duplicate, "merge", {"csrf": csrf, "original": "2026-999999"}, "没有找到工单 2026-999999")
        assert c.post(f"/centre/tickets/{duplicate}/merge", data={"original": original}).status_code == 403
        assert state(demo_factory, duplicate) == before
        since = mark(demo_factory)
        done = c.post(f"/centre/tickets/{duplicate}/merge", data={"csrf": csrf, "original": original})
        assert done.status_code == 303
        assert t("web.done") in c.get(done.headers["location"]).text
        # the original's page records the merge
        joined_page = c.get(f"/centre/tickets/{original}").text
        assert duplicate in joined_page and '<tr class="ev-merge"><td>' in joined_page
        assert ">合并<" in joined_page.split('class="ev-merge"')[1]
    admin = person_id(demo_factory, ADMIN)
    with session_scope(demo_factory) as s:
        dup = s.scalars(select(Ticket).where(Ticket.number == duplicate)).one()
        orig = s.scalars(select(Ticket).where(Ticket.number == original)).one()
        assert dup.status is S.duplicate and dup.duplicate_of_id == orig.id
        joined = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == orig.id)
                           .order_by(TicketEvent.id.desc()).limit(1)).one()
        assert (joined.kind, joined.actor_id, joined.detail) == ("merge", admin, {"duplicate": dup.id})
        # both were P-0071's: the reporter already follows the original, nobody is added twice
        assert s.scalar(select(func.count()).select_from(TicketFollower)
                        .where(TicketFollower.ticket_id == orig.id)) == 0
    assert texts(demo_factory, REPORTER, since) == [
        t("merge.notify_original", duplicate=duplicate, original=original),
        t("merge.notify_duplicate", original=original)]


def test_the_triage_queue_is_in_the_web_list(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-07", "商户门前的货车", category="parking")
    elsewhere = file_ticket(demo_factory, "B-HPL-01-03", "还在网格里的")
    with session_scope(demo_factory) as s:
        tk = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        service.reject(s, tk.id, person(s, SECRETARY), "是商户门前的货车，应由第二网格处理", tz=TZ)
        assert tk.status is S.triage
    with signed_in(demo_factory, site, ADMIN) as c:
        listed = c.get("/centre/tickets")
        assert '<option value="triage"' in listed.text and "待社区分派" in listed.text
        queue = c.get("/centre/tickets", params={"status": "triage"}).text
        assert number in queue and elsewhere not in queue
        # still open: the 未办结 filter keeps it, and the map counts it
        assert number in c.get("/centre/tickets", params={"status": "active"}).text
        page = c.get(f"/centre/tickets/{number}")
        assert "待社区分派" in page.text and "应由第二网格处理" in page.text
        assert 'id="take-over"' in page.text and "/transfer" in page.text
        done = c.post(f"/centre/tickets/{number}/transfer", data={
            "csrf": csrf_of(page.text), "grid": str(grid_id(demo_factory, "G-HPL-02")), "reason": "商户在第二网格"})
        assert done.status_code == 303
        assert number not in c.get("/centre/tickets", params={"status": "triage"}).text
    assert last_events(demo_factory, number, 1)[0][:3] == ("transfer", S.triage, S.accepted)
