"""Open311 GeoReport v2 at /open311/v2, over real HTTP against the real Sanic app (web.app) on a
real database (SQLite and PostgreSQL, the demo community loaded): every endpoint in JSON and
XML checked against the schemas in tests/fixtures/open311, every error, a POST that routes and
one that cannot, keys and their audit, and what a GET may publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import Point, shape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT, Settings
from core.db import session_scope
from core.models import (
    ApiKey,
    AuditEntry,
    Building,
    Community,
    Grid,
    Open311Request,
    OutboxMessage,
    Person,
    Ticket,
    TicketStatus,
    utcnow,
)
from core.open311 import keys, statuses
from core.open311.privacy import mask
from core.tickets.lifecycle import NewTicket, change_status
from core.tickets.service import submit_report
from tests.app.schema_check import check, from_xml
from tests.app.web_server import free_port, serving

V2 = "/open311/v2"
TZ = Settings().tz
BOT_TOKEN = "123456:OPEN311-TEST-TOKEN"
PHOTO = b"\xff\xd8\xff\xe0 a photo of a blocked fire lane"


@dataclass
class Web:
    base: str
    factory: sessionmaker[Session]
    key: str
    key_id: int

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.base + V2 + path, params=params, timeout=30)

    def both(self, path: str, schema: str, expect: int = 200, **params: Any) -> Any:
        """GET path.json and path.xml; both valid against `schema`, and the same; the JSON's value."""
        as_json = self.get(f"{path}.json", **params)
        as_xml = self.get(f"{path}.xml", **params)
        assert as_json.status_code == expect, as_json.text
        assert as_xml.status_code == expect, as_xml.text
        assert as_json.headers["content-type"] == "application/json; charset=utf-8"
        assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
        value = check(as_json.json(), schema)
        assert from_xml(as_xml.content, schema) == value
        return value

    def post(self, fmt: str = "json", **data: Any) -> httpx.Response:
        return httpx.post(f"{self.base}{V2}/requests.{fmt}", data=data, timeout=30)

    def posted(self, fmt: str, status: int, **data: Any) -> Any:
        """POST requests.<fmt>: the answer read and checked (post_requests or errors schema)."""
        answer = self.post(fmt, **data)
        assert answer.status_code == status, answer.text
        schema = "post_requests" if status == 200 else "errors"
        return check(answer.json(), schema) if fmt == "json" else from_xml(answer.content, schema)


class FakeBotApi:
    """getFile and the file download of the Bot API, for media_url's photos."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                paths.append(self.path)
                if self.path.startswith(f"/bot{BOT_TOKEN}/getFile"):
                    body = json.dumps({"ok": True, "result": {"file_id": "x", "file_path": "photos/file_7.jpg"}}).encode()
                elif self.path == f"/file/bot{BOT_TOKEN}/photos/file_7.jpg":
                    body = PHOTO
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    fake = FakeBotApi()
    yield fake
    fake.stop()


def _serve(factory: sessionmaker[Session], tmp_path: Path, bot_api: FakeBotApi | None = None,
           **settings: Any) -> Iterator[Web]:
    with session_scope(factory) as s:
        row, key = keys.create(s, "city-app", "C-HPL")
        key_id = row.id
    if bot_api is not None:
        settings.update(telegram_bot_token=BOT_TOKEN, telegram_api_url=f"http://127.0.0.1:{bot_api.port}")
    with serving(Settings(**settings), factory, media_dir=tmp_path / "media") as base:
        yield Web(base, factory, key, key_id)


@pytest.fixture
def web(demo_factory: sessionmaker[Session], tmp_path: Path, bot_api: FakeBotApi) -> Iterator[Web]:
    yield from _serve(demo_factory, tmp_path, bot_api)


def _file(factory: sessionmaker[Session], category: str = "sanitation", *, building: str | None = "B-HPL-01-03",
          grid: str | None = None, at: datetime | None = None, **extra: Any) -> str:
    """A ticket filed through the ticket service, as chat files them; its number."""
    with session_scope(factory) as s:
        b = s.scalar(select(Building).where(Building.code == building)) if building else None
        g = s.get(Grid, b.grid_id) if b is not None else s.scalar(select(Grid).where(Grid.code == grid)) \
            if grid else None
        ticket = submit_report(s, NewTicket(
            category_code=category, description=extra.pop("description", "垃圾桶满了没人清"),
            community_id=g.community_id if g else None, grid_id=g.id if g else None,
            building_id=b.id if b else None, **extra), tz=TZ, now=at or utcnow())
        return ticket.number


def _ticket(factory: sessionmaker[Session], number: str) -> dict[str, Any]:
    with session_scope(factory) as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        grid = s.get(Grid, t.grid_id) if t.grid_id else None
        community = s.get(Community, t.community_id) if t.community_id else None
        return {"status": t.status, "grid": grid.code if grid else None,
                "community": community.code if community else None, "reporter_id": t.reporter_id,
                "anonymous": t.anonymous, "description": t.description, "id": t.id, "lat": t.lat}


# -- discovery, services, service definitions --------------------------------------------


def test_discovery_in_json_and_xml(web: Web) -> None:
    found = web.both("/discovery", "discovery")
    endpoint = found["endpoints"][0]
    assert endpoint["url"] == web.base + V2
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}
    assert found["max_requests"] == 1000


def test_services_are_our_categories_grouped_by_kind(web: Web) -> None:
    found = {s["service_code"]: s for s in web.both("/services", "services")}
    assert "emergency" not in found  # Open311 is for non-emergency requests
    assert found["heating"]["group"] == "urgent" and found["dispute"]["group"] == "dispute"
    assert found["parking"] == {"service_code": "parking", "service_name": "乱停车",
                                "description": found["parking"]["description"], "metadata": True,
                                "type": "realtime", "keywords": None, "group": "general"}
    assert found["sanitation"]["metadata"] is False  # it asks nothing beyond the description
    assert len(found) == 17


def test_service_definition_lists_a_category_questions(web: Web) -> None:
    parking = web.both("/services/parking", "service_definition")
    assert parking["service_code"] == "parking"
    (vehicle,) = parking["attributes"]
    assert vehicle["code"] == "vehicle" and vehicle["required"] is True
    assert vehicle["datatype"] == "singlevaluelist" and vehicle["order"] == 1
    assert {v["key"]: v["name"] for v in vehicle["values"]}["ebike"] == "电动车"
    assert web.both("/services/sanitation", "service_definition")["attributes"] == []


@pytest.mark.parametrize("path", ["/services/nope", "/services/emergency", "/requests/2026-999999",
                                  "/tokens/no-such-token"])
def test_what_does_not_exist_is_404_in_either_format(web: Web, path: str) -> None:
    (error,) = web.both(path, "errors", expect=404)
    assert error["code"] == 404


def test_unknown_resources_and_formats_are_404(web: Web) -> None:
    for path in ("/services.csv", "/reports.json", "/requests", "/widgets/1.json"):
        answer = web.get(path)
        assert answer.status_code == 404, path
        if path.endswith(".json"):
            check(answer.json(), "errors")
        else:
            from_xml(answer.content, "errors")
    wrong = httpx.post(f"{web.base}{V2}/services.json", data={"api_key": web.key}, timeout=10)
    assert wrong.status_code == 404 and check(wrong.json(), "errors")


# -- POST requests -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_routes_by_address_like_chat_and_files_a_real_ticket(web: Web, fmt: str) -> None:
    (answer,) = web.posted(fmt, 200, api_key=web.key, service_code="parking", address_string="和平里7号楼",
                           description="电动车堵在7号楼门口", **{"attribute[vehicle]": "ebike"})
    number = answer["service_request_id"]
    assert answer["token"] and "和平里第一网格党支部" in answer["service_notice"]
    ticket = _ticket(web.factory, number)
    assert ticket["status"] is TicketStatus.accepted and ticket["grid"] == "G-HPL-01"
    assert ticket["description"] == "电动车堵在7号楼门口\n车辆类型：电动车"
    assert ticket["reporter_id"] is None and ticket["anonymous"] is True  # no consent: no contact kept
    with session_scope(web.factory) as s:
        cards = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "card")).all()
        assert any(number in json.dumps(c.payload, ensure_ascii=False) for c in cards)  # the branch got the card
        audited = {(e.action, e.subject) for e in s.scalars(select(AuditEntry))}
        assert ("apikey.use", f"apikey:{web.key_id}") in audited
        assert ("open311.request", f"ticket:{ticket['id']}") in audited
    one = web.both(f"/requests/{number}", "requests")[0]
    assert one["status"] == "open" and one["status_notes"] == "已受理"
    assert one["agency_responsible"] == "和平里第一网格党支部"
    assert one["address"] == "和平里小区7号楼" and one["address_id"] == "B-HPL-01-07"
    token = web.both(f"/tokens/{answer['token']}", "tokens")
    assert token == [{"service_request_id": number, "token": answer["token"]}]


def test_post_routes_by_lat_long_to_the_grid_the_point_is_in(web: Web) -> None:
    with session_scope(web.factory) as s:
        polygon = s.scalar(select(Grid.polygon).where(Grid.code == "G-HPL-02"))
    inside = shape(polygon).representative_point()
    (answer,) = web.posted("json", 200, api_key=web.key, service_code="sanitation", lat=str(inside.y),
                           long=str(inside.x), description="垃圾站满了")
    ticket = _ticket(web.factory, answer["service_request_id"])
    assert ticket["grid"] == "G-HPL-02" and ticket["status"] is TicketStatus.accepted
    assert "和平里第二网格" in answer["service_notice"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_that_cannot_be_routed_goes_to_the_community_triage_queue(web: Web, fmt: str) -> None:
    (answer,) = web.posted(fmt, 200, api_key=web.key, service_code="facilities", lat="31.2", long="121.5",
                           address_string="不知道哪儿的路灯", description="路灯坏了一排")
    number = answer["service_request_id"]
    assert "待分拣" in answer["service_notice"] and "和平里社区" in answer["service_notice"]
    ticket = _ticket(web.factory, number)
    assert ticket["status"] is TicketStatus.new and ticket["grid"] is None and ticket["community"] == "C-HPL"
    with session_scope(web.factory) as s:
        admin = s.scalar(select(Person).where(Person.code == "P-0069"))
        assert admin is not None
        cards = s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == admin.telegram_id)).all()
        assert any(number in json.dumps(c.payload, ensure_ascii=False) for c in cards)  # the admin triages it
    published = web.both(f"/requests/{number}", "requests")[0]
    assert published["agency_responsible"] == "和平里社区（待分拣）" and published["status"] == "open"
    assert published["lat"] is None and published["address"] is None  # the client's point is not ours to publish


def test_post_contact_is_kept_only_with_consent(web: Web) -> None:
    contact = {"first_name": "小明", "last_name": "王", "phone": "13912345678", "email": "wang@example.com"}
    (without,) = web.posted("json", 200, api_key=web.key, service_code="noise", address_string="和平里3号楼",
                            description="楼上装修太吵", **contact)
    (consented,) = web.posted("json", 200, api_key=web.key, service_code="noise", address_string="和平里3号楼",
                              description="楼上装修太吵", contact_consent="true",
                              **{**contact, "attribute[when]": ["early", "night"]})
    plain, kept = _ticket(web.factory, without["service_request_id"]), _ticket(web.factory, consented["service_request_id"])
    assert plain["reporter_id"] is None and plain["anonymous"] is True
    assert kept["anonymous"] is False and kept["description"].endswith("噪音出现的时段：清晨（7点前）、夜间（22点后）")
    with session_scope(web.factory) as s:
        reporter = s.get(Person, kept["reporter_id"])
        assert reporter is not None and reporter.telegram_id is None  # external: no Telegram person
        assert (reporter.display_name, reporter.phone, reporter.contact_consent) == ("王小明", "13912345678", True)
        assert s.get(Open311Request, kept["id"]).email == "wang@example.com"  # type: ignore[union-attr]
        assert s.get(Open311Request, plain["id"]).email is None  # type: ignore[union-attr]
        assert len(s.scalars(select(Person).where(Person.phone == "13912345678")).all()) == 1
    body = web.get("/requests.json").text + web.get("/requests.xml").text
    assert "13912345678" not in body and "王小明" not in body and "wang@" not in body


ERRORS = [
    (403, {}, "api_key is required"),
    (403, {"api_key": "not-a-key"}, "not valid"),
    (400, {"api_key": "KEY"}, "service_code is required"),
    (400, {"api_key": "KEY", "service_code": "nope", "lat": "39.93", "long": "116.44"}, "not one of our services"),
    (400, {"api_key": "KEY", "service_code": "emergency", "lat": "39.93", "long": "116.44"}, "not one of our"),
    (400, {"api_key": "KEY", "service_code": "sanitation"}, "a location is required"),
    (400, {"api_key": "KEY", "service_code": "sanitation", "lat": "north", "long": "116.44"}, "lat is not a number"),
    (400, {"api_key": "KEY", "service_code": "sanitation", "lat": "39.9"}, "lat and long go together"),
    (400, {"api_key": "KEY", "service_code": "sanitation", "lat": "99", "long": "116.44"}, "out of range"),
    (400, {"api_key": "KEY", "service_code": "parking", "address_string": "和平里7号楼"}, "attribute[vehicle] is required"),
    (400, {"api_key": "KEY", "service_code": "parking", "address_string": "和平里7号楼", "attribute[vehicle]": "tank"},
     "is not one of"),
    (400, {"api_key": "KEY", "service_code": "sanitation", "address_string": "和平里7号楼", "description": "长" * 4001},
     "longer than"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_errors_are_the_spec_list_and_file_nothing(web: Web, fmt: str) -> None:
    for status, data, words in ERRORS:
        data = {k: (web.key if v == "KEY" else v) for k, v in data.items()}
        (error,) = web.posted(fmt, status, **data)
        assert error["code"] == status and words in error["description"], (data, error)
    with session_scope(web.factory) as s:
        assert s.scalars(select(Ticket)).all() == []
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "apikey.refused")).all()
        assert [e.detail["use"] for e in refused] == ["POST requests"]  # the wrong key; no key is no use


def test_a_revoked_key_is_refused(web: Web) -> None:
    with session_scope(web.factory) as s:
        keys.revoke(s, "city-app")
    (error,) = web.posted("json", 403, api_key=web.key, service_code="sanitation", address_string="和平里7号楼")
    assert "revoked" in error["description"]
    with session_scope(web.factory) as s:
        assert s.scalars(select(Ticket)).all() == []
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "apikey.refused")).one()
        assert entry.subject == f"apikey:{web.key_id}" and entry.detail["revoked"] is True


# -- GET requests ---------------------------------------------------------------------


def test_get_requests_filters_and_defaults(web: Web) -> None:
    now = utcnow()
    recent = _file(web.factory, "sanitation", at=now - timedelta(days=1))
    noisy = _file(web.factory, "noise", description="广场舞太吵", at=now - timedelta(days=2))
    closed = _file(web.factory, "pets", description="狗粪没人管", at=now - timedelta(days=3))
    old = _file(web.factory, "sanitation", at=now - timedelta(days=100))
    with session_scope(web.factory) as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == closed))
        change_status(s, ticket, TicketStatus.rejected, actor=None, note="不属于网格事务，请拨打12345")  # type: ignore[arg-type]

    def ids(**params: Any) -> list[str]:
        return [r["service_request_id"] for r in web.both("/requests", "requests", **params)]

    assert ids() == [recent, noisy, closed]  # the last 90 days, newest first
    assert ids(service_code="noise,pets") == [noisy, closed]
    assert ids(status="closed") == [closed] and ids(status="open") == [recent, noisy]
    assert ids(status="open,closed") == [recent, noisy, closed]
    since = (now - timedelta(days=2, hours=12)).astimezone(TZ).isoformat(timespec="seconds")
    assert ids(start_date=since) == [recent, noisy]
    until = (now - timedelta(days=1, hours=12)).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    assert ids(end_date=until) == [noisy, closed]
    a_while_ago = (now - timedelta(days=120)).isoformat()
    assert ids(start_date=a_while_ago, end_date=(now - timedelta(days=50)).isoformat()) == [old]
    # service_request_id: the other filters are ignored, as the spec says
    assert ids(service_request_id=f"{old},{closed}", status="open") == [closed, old]
    rejected = web.both(f"/requests/{closed}", "requests")[0]
    assert rejected["status"] == "closed" and rejected["status_notes"] == "已退回"


@pytest.mark.parametrize(("params", "words"), [
    ({"start_date": "yesterday"}, "W3C date-time"),
    ({"end_date": "2026-12-01T00:00:00"}, "time zone"),
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "90 days"),
    ({"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, "before start_date"),
    ({"status": "pending"}, "open or closed"),
])
def test_get_requests_bad_parameters_are_400(web: Web, params: dict[str, str], words: str) -> None:
    (error,) = web.both("/requests", "errors", expect=400, **params)
    assert error["code"] == 400 and words in error["description"]


def test_get_requests_returns_at_most_1000(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    now = utcnow()
    with session_scope(sqlite_demo_factory) as s:
        b = s.scalar(select(Building).where(Building.code == "B-HPL-01-03"))
        assert b is not None
        g = s.get(Grid, b.grid_id)
        assert g is not None
        for i in range(1005):
            submit_report(s, NewTicket(category_code="sanitation", description=f"第{i}次", community_id=g.community_id,
                                       grid_id=g.id, building_id=b.id), tz=TZ, now=now - timedelta(minutes=i))
    for web in _serve(sqlite_demo_factory, tmp_path):
        found = web.both("/requests", "requests")
        assert len(found) == 1000
        assert found[0]["description"] == "第0次" and found[-1]["description"] == "第999次"


# -- privacy ----------------------------------------------------------------------------


def test_what_a_get_publishes_is_safe(web: Web, bot_api: FakeBotApi) -> None:
    with session_scope(web.factory) as s:
        reporter = s.scalar(select(Person).where(Person.code == "P-0001"))  # 董国华, 13800000001, consented
        assert reporter is not None
        reporter_id, name, phone = reporter.id, reporter.display_name, reporter.phone
    words = "3号楼门口京A12345又堵了，车主电话 139-1234-5678，身份证 11010119900307123X，座机 010-65123456"
    number = _file(web.factory, "parking", description=words, reporter_id=reporter_id, anonymous=False,
                   location_text="和平里小区3号楼2单元301室门口", lat=39.9331234, lon=116.4451234,
                   photo_file_ids=["AgACAgSECRETFILEID"])
    grid_only = _file(web.factory, "greenery", building=None, grid="G-HPL-02", description="绿地被人种了菜",
                      lat=39.9351111, lon=116.4491111)
    emergency = _file(web.factory, "emergency", description="3号楼着火了")
    bodies = web.get("/requests.json").text + web.get("/requests.xml").text + \
        web.get(f"/requests/{number}.json").text + web.get(f"/requests/{number}.xml").text
    for secret in (name, phone, "13912345678", "139-1234-5678", "11010119900307123X", "京A12345", "65123456",
                   "301", "39.9331234", "116.4451234", "39.9351111", "SECRETFILEID", "api.telegram.org", BOT_TOKEN,
                   emergency, "着火"):
        assert secret not in bodies, secret
    found = {r["service_request_id"]: r for r in web.both("/requests", "requests")}
    assert set(found) == {number, grid_only}  # an emergency is never published
    published = found[number]
    assert published["description"] == mask(words) and "[车牌已隐去]" in published["description"]
    assert published["description"].count("[电话已隐去]") == 2 and "[证件号已隐去]" in published["description"]
    assert (published["lat"], published["long"]) == (39.93338, 116.446103)  # the building's registry point
    assert published["address"] == "和平里小区3号楼"
    assert published["media_url"] == f"{web.base}{V2}/media/{number}/1"
    in_grid = found[grid_only]
    assert in_grid["address"] == "和平里第二网格" and in_grid["address_id"] is None
    with session_scope(web.factory) as s:
        polygon = shape(s.scalar(select(Grid.polygon).where(Grid.code == "G-HPL-02")))
    assert polygon.contains(Point(in_grid["long"], in_grid["lat"]))  # a point of the grid, not the reporter's
    photo = httpx.get(published["media_url"], timeout=30)
    assert photo.status_code == 200 and photo.content == PHOTO and photo.headers["content-type"] == "image/jpeg"
    assert any("getFile" in p and "SECRETFILEID" in p for p in bot_api.paths)  # the token stayed on our side
    calls = len(bot_api.paths)
    assert httpx.get(published["media_url"], timeout=30).content == PHOTO and len(bot_api.paths) == calls  # cached
    assert web.get(f"/media/{number}/2").status_code == 404
    assert web.get(f"/media/{emergency}/1").status_code == 404
    web.both(f"/requests/{emergency}", "errors", expect=404)


def test_masking_catches_the_usual_forms() -> None:
    assert mask("电话１３９１２３４５６７８") == "电话[电话已隐去]"
    assert mask("打+86 139 1234 5678或6512 3456或400-810-5555") == "打[电话已隐去]或[电话已隐去]或[电话已隐去]"
    assert mask("手机一三九一二三四五六七八") == "手机[电话已隐去]"
    assert mask("粤B·D1234X和京AD12345都停这") == "[车牌已隐去]和[车牌已隐去]都停这"
    assert mask("身份证110101900307123") == "身份证[证件号已隐去]"
    assert mask("写信到 a.b@example.com") == "写信到 [邮箱已隐去]"
    assert mask("7号楼3单元，工单2026-000123，2026-12-05晚上8点") == "7号楼3单元，工单2026-000123，2026-12-05晚上8点"


def test_every_state_maps_to_open_or_closed() -> None:
    assert set(statuses.STATUS) == set(TicketStatus)
    assert {s for s, p in statuses.STATUS.items() if p == "closed"} == {
        TicketStatus.resolved, TicketStatus.closed, TicketStatus.rejected, TicketStatus.duplicate,
        TicketStatus.withdrawn}
    assert statuses.notes(TicketStatus.claimed) == "处理中"
    assert sorted(statuses.ours("open") + statuses.ours("closed")) == sorted(TicketStatus)


# -- keys -------------------------------------------------------------------------------


def test_gets_can_be_made_to_need_a_key(demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    for web in _serve(demo_factory, tmp_path, open311_get_needs_key=True):
        (error,) = web.both("/services", "errors", expect=403)
        assert "api_key is required" in error["description"]
        assert web.both("/services", "services", api_key=web.key)
        assert web.get("/requests.json", api_key="wrong").status_code == 403
        with session_scope(web.factory) as s:
            uses = s.scalars(select(AuditEntry).where(AuditEntry.action == "apikey.use")).all()
            assert [e.detail["use"] for e in uses] == ["GET services", "GET services"]
            assert s.scalars(select(AuditEntry).where(AuditEntry.action == "apikey.refused")).one().detail["use"] \
                == "GET requests"


def _gridbot(args: list[str], db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_gridbot_apikey_create_list_revoke(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    assert _gridbot(["demo"], db).returncode == 0
    created = _gridbot(["apikey", "create", "city-app", "--community", "C-HPL"], db)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert len(key) >= 40 and "shown only now" in created.stderr
    assert _gridbot(["apikey", "create", "city-app"], db).returncode == 2  # the name is taken
    assert _gridbot(["apikey", "create", "other", "--community", "C-NOPE"], db).returncode == 2
    from core.db import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{db}")
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        row = s.scalars(select(ApiKey)).one()
        assert key not in (row.key_hash, row.name, row.prefix) and row.prefix == key[:8]  # stored hashed
        assert keys.authenticate(s, key, "GET requests") is not None
    listed = json.loads(_gridbot(["apikey", "list", "--json"], db).stdout)
    assert [(k["name"], k["prefix"], k["community"], k["revoked"], k["uses"]) for k in listed] == \
        [("city-app", key[:8], "C-HPL", None, 1)]
    assert _gridbot(["apikey", "revoke", "city-app"], db).returncode == 0
    assert _gridbot(["apikey", "revoke", "nobody"], db).returncode == 1
    assert json.loads(_gridbot(["apikey", "list", "--json"], db).stdout)[0]["revoked"] is not None
    with session_scope(factory) as s:
        assert keys.authenticate(s, key, "POST requests") is None
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a in actions if a.startswith("apikey.")] == \
        ["apikey.create", "apikey.use", "apikey.revoke", "apikey.refused"]
    engine.dispose()


def test_a_ticket_its_reporter_withdrew_is_not_published(web: Web) -> None:
    from core.models import Person
    from core.tickets import changes

    with session_scope(web.factory) as s:
        reporter = s.scalars(select(Person).where(Person.code == "P-0071")).one()
        reporter_id = reporter.id
    number = _file(web.factory, reporter_id=reporter_id)
    assert web.get(f"/requests/{number}.json").status_code == 200
    with session_scope(web.factory) as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        changes.withdraw(s, ticket.id, s.get(Person, reporter_id))
    (error,) = web.both(f"/requests/{number}", "errors", expect=404)
    assert error["code"] == 404
    assert number not in web.get("/requests.json").text
