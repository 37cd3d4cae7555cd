"""The command centre over real HTTP (web.app on a free port; SQLite and PostgreSQL): the /web link
signs in once and only by a press and is not kept in the outbox once sent, an expired link, a forged cookie, an idle session and a POST
without its CSRF token are refused, each person sees only their grids, 督办 and the contact go
through the ticket service (its event, its audit), and the CSV exports read back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import session_scope
from core.messages import t
from core.models import (
    AuditEntry,
    Grid,
    OutboxMessage,
    SendState,
    Ticket,
    TicketEvent,
    WebLoginToken,
    WebSession,
    utcnow,
)
from tests.app.centre_helpers import (
    ADMIN,
    RESIDENT,
    WORKER,
    csrf_of,
    file_ticket,
    link_for,
    person,
    sign_in,
    token_of,
)
from tests.app.web_server import serving


@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False)


def test_a_link_signs_in_once_and_only_by_the_press(demo_factory: sessionmaker[Session], site: str) -> None:
    url = link_for(demo_factory, ADMIN, site)
    assert url.startswith(site + "/centre/login/")
    with client(site) as c:
        for _ in range(2):  # a link preview's GETs redeem nothing
            page = c.get(url)
            assert page.status_code == 200 and "登录" in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
        assert c.get("/centre/").status_code == 401
        signed = sign_in(c, url)
        assert signed.status_code == 303 and signed.headers["location"] == "/centre/"
        cookie = next(v for k, v in signed.headers.multi_items()
                      if k == "set-cookie" and v.startswith("gridbot_centre="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/centre" in cookie
        home = c.get("/centre/")
        assert home.status_code == 200 and "网格地图" in home.text and "和平里第一网格" in home.text
    with client(site) as other:  # the same link again, in another browser
        again = sign_in(other, url)
        assert again.status_code == 403 and "已用过" in again.text
        assert other.get("/centre/").status_code == 401
    with session_scope(demo_factory) as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1
        # only digests are kept
        raw = url.rsplit("/", 1)[1]
        assert s.scalar(select(func.count()).select_from(WebLoginToken).where(WebLoginToken.token_hash == raw)) == 0


def test_an_expired_link_is_refused(demo_factory: sessionmaker[Session], site: str) -> None:
    url = link_for(demo_factory, ADMIN, site, now=utcnow() - timedelta(minutes=11))
    with client(site) as c:
        answer = sign_in(c, url)
        assert answer.status_code == 403 and "已过期" in answer.text
        assert "gridbot_centre=" not in answer.headers.get("set-cookie", "").replace("gridbot_centre_login", "")
        assert c.get("/centre/tickets").status_code == 401


def test_the_login_form_needs_its_own_csrf_value(demo_factory: sessionmaker[Session], site: str) -> None:
    token = token_of(demo_factory, ADMIN)
    with client(site) as c:
        answer = c.post("/centre/login", data={"token": token})  # no page fetched: no cookie, no value
        assert answer.status_code == 403
        assert c.post("/centre/login", data={"token": token, "csrf": "forged"}).status_code == 403
    with client(site) as c:  # the token was not used up by those
        assert sign_in(c, f"{site}/centre/login/{token}").status_code == 303


def test_a_forged_cookie_and_an_idle_session_are_refused(demo_factory: sessionmaker[Session], site: str) -> None:
    with client(site) as c:
        c.cookies.set("gridbot_centre", "forged-value-of-the-right-length-000000000000")
        refused = c.get("/centre/")
        assert refused.status_code == 401 and "/web" in refused.text
        assert c.get("/centre/map.json").status_code == 401
        assert c.get("/centre/tickets.csv").status_code == 401
    with client(site) as c:
        assert sign_in(c, link_for(demo_factory, ADMIN, site)).status_code == 303
        assert c.get("/centre/").status_code == 200
        with session_scope(demo_factory) as s:
            for row in s.scalars(select(WebSession)):
                row.last_seen_at = utcnow() - timedelta(minutes=61)
        assert c.get("/centre/").status_code == 401


def test_a_post_without_its_csrf_token_changes_nothing(demo_factory: sessionmaker[Session], site: str) -> None:
    number = file_ticket(demo_factory, "B-HPL-01-03", "楼道里堆满了杂物")
    with client(site) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        page = c.get(f"/centre/tickets/{number}")
        assert page.status_code == 200 and 'id="urge"' in page.text
        assert c.post(f"/centre/tickets/{number}/urge").status_code == 403
        assert c.post(f"/centre/tickets/{number}/urge", data={"csrf": "wrong"}).status_code == 403
        assert c.post(f"/centre/tickets/{number}/contact").status_code == 403
        with session_scope(demo_factory) as s:
            ticket_id = s.scalars(select(Ticket.id).where(Ticket.number == number)).one()
            assert s.scalar(select(func.count()).select_from(TicketEvent).where(
                TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "urge")) == 0
            assert s.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "ticket.contact")) == 0
        done = c.post(f"/centre/tickets/{number}/urge", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
        shown = c.get(done.headers["location"])
        assert "已督办" in shown.text and "督办" in shown.text
        with session_scope(demo_factory) as s:
            [event] = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                          TicketEvent.kind == "urge")).all()
            assert event.actor_id == person(s, ADMIN).id
        contact = c.post(f"/centre/tickets/{number}/contact", data={"csrf": csrf_of(page.text)})
        assert contact.status_code == 200 and "13800000071" in contact.text
        with session_scope(demo_factory) as s:
            [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.contact")).all()
            assert entry.actor_id == person(s, ADMIN).id and entry.subject == f"ticket:{ticket_id}"
        # the sign-out form needs the token too
        assert c.post("/centre/logout").status_code == 403
        assert c.post("/centre/logout", data={"csrf": csrf_of(page.text)}).status_code == 200
        assert c.get("/centre/").status_code == 401


def test_a_grid_worker_sees_their_grid_only(demo_factory: sessionmaker[Session], site: str) -> None:
    mine = file_ticket(demo_factory, "B-HPL-01-03", "一网格的垃圾桶满了")
    theirs = file_ticket(demo_factory, "B-HPL-02-10", "二网格的垃圾桶满了")
    with client(site) as c:
        sign_in(c, link_for(demo_factory, WORKER, site))
        assert c.get(f"/centre/tickets/{mine}").status_code == 200
        refused = c.get(f"/centre/tickets/{theirs}")
        assert refused.status_code == 404 and "二网格的垃圾桶" not in refused.text
        assert c.get(f"/centre/version.json?ticket={theirs}").status_code == 404
        listed = c.get("/centre/tickets").text
        assert mine in listed and theirs not in listed
        other_grid = c.get("/centre/tickets", params={"grid": "2"}).text  # another grid's id by hand
        assert theirs not in other_grid
        mapped = c.get("/centre/map.json").json()
        assert [g["code"] for g in mapped["grids"]] == ["G-HPL-01"]
        page = c.get(f"/centre/tickets/{mine}")
        assert 'id="urge"' not in page.text  # 督办 is from above the branch
        assert c.post(f"/centre/tickets/{mine}/urge", data={"csrf": csrf_of(page.text)}).status_code == 403
        # and the POST to another grid's ticket finds nothing
        assert c.post(f"/centre/tickets/{theirs}/contact", data={"csrf": csrf_of(page.text)}).status_code == 404


def test_only_web_roles_get_a_link(demo_factory: sessionmaker[Session]) -> None:
    from core.centre import links

    with session_scope(demo_factory) as s:
        refusal = links.link_text(s, person(s, RESIDENT), base_url="http://x", minutes=10)
        assert "http" not in refusal and "网页指挥中心只对" in refusal
        assert links.link_text(s, None, base_url="http://x", minutes=10).find("http") == -1
        assert s.scalar(select(func.count()).select_from(WebLoginToken)) == 0


def test_the_csv_exports_read_back(demo_factory: sessionmaker[Session], site: str) -> None:
    first = file_ticket(demo_factory, "B-HPL-01-03", "路灯不亮，晚上很黑", category="facilities")
    file_ticket(demo_factory, "B-HPL-01-03", "垃圾没人收")
    with client(site) as c:
        sign_in(c, link_for(demo_factory, ADMIN, site))
        answer = c.get("/centre/tickets.csv", params={"category": "facilities", "q": "路灯"})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert answer.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert rows[0][:3] == ["编号", "登记时间", "类别"]
        assert [r[0] for r in rows[1:]] == [first] and rows[1][2] == "公共设施"
        rates = c.get("/centre/rates.csv")
        assert rates.content.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(rates.content.decode("utf-8-sig"))))
        assert table[0][:3] == ["月份", "网格", "本月登记"]
        with session_scope(demo_factory) as s:
            grids = s.scalar(select(func.count()).select_from(Grid).where(Grid.code.like("G-HPL-%")))
        assert len(table) == 1 + 1 + grids  # header, total, each grid of 和平里
        assert table[1][1] == "合计" and table[1][2] == "2"


def test_pages_render_for_a_secretary(demo_factory: sessionmaker[Session], site: str) -> None:
    file_ticket(demo_factory, "B-HPL-01-03", "井盖松动")
    with client(site) as c:
        sign_in(c, link_for(demo_factory, "P-0001", site))  # secretary of 和平里第一网格党支部
        for path in ("/centre/", "/centre/tickets?status=active&overdue=1", "/centre/figures",
                     "/centre/figures?month=2026-01", "/centre/tickets?from=2026-01-01&to=2030-01-01&q=井盖"):
            page = c.get(path)
            assert page.status_code == 200, path
            assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "井盖松动" in c.get("/centre/tickets?q=井盖").text
        assert c.get("/centre/static/vendor/echarts/echarts.min.js").status_code == 200


def test_the_cookie_is_secure_by_default(demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    with serving(Settings(), demo_factory, media_dir=tmp_path / "media") as base, client(base) as c:
        url = link_for(demo_factory, ADMIN, base)
        page = c.get(url)
        assert "Secure" in page.headers["set-cookie"] and "SameSite=Strict" in page.headers["set-cookie"]
        pre = csrf_of(page.text)
        # over plain HTTP a client keeps a Secure cookie to itself: hand it over as a browser on HTTPS would
        signed = c.post("/centre/login", data={"token": url.rsplit("/", 1)[1], "csrf": pre},
                        headers={"Cookie": f"gridbot_centre_login={pre}"})
        assert signed.status_code == 303
        cookie = next(v for k, v in signed.headers.multi_items()
                      if k == "set-cookie" and v.startswith("gridbot_centre="))
        assert "Secure" in cookie and "HttpOnly" in cookie


def test_the_link_is_not_kept_once_sent(demo_factory: sessionmaker[Session], site: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """/web through the real Application: the link reaches the chat, then the outbox row keeps a
    text without it (its token only as a digest, in web_login_tokens), and the link still works."""
    import asyncio
    import re

    from tests.app.journey import journey

    monkeypatch.setenv("WEB_BASE_URL", site)
    with session_scope(demo_factory) as s:
        admin_tg = person(s, ADMIN).telegram_id

    async def scenario() -> str:
        async with journey(demo_factory, "http://127.0.0.1:9") as j:
            [text] = await j.say(admin_tg, "/web")
            found = re.search(r"https?://\S+", text)
            assert found is not None, text
            return found.group(0)

    url = asyncio.run(scenario())
    raw = url.rsplit("/", 1)[1]
    with session_scope(demo_factory) as s:
        [row] = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"web:{admin_tg}:%"))).all()
        assert row.send_state is SendState.sent and row.payload_after is None
        assert raw not in str(row.payload) and "/centre/login/" not in row.payload["text"]
        assert row.payload["text"] == t("web.link_kept", minutes=10) and row.payload["no_preview"] is True
    with client(site) as c:
        assert sign_in(c, url).status_code == 303
