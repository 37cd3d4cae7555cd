"""Open311 GeoReport v2 at /open311/v2: discovery, services, service definitions, requests
(GET many, GET one, POST), tokens, and the photos that media_url points at.

Each resource is `<name>.<format>` with format xml or json. GETs are public (the spec's
model; OPEN311_GET_NEEDS_KEY=true asks for a key on them too) and publish only what
core.open311.requests allows; POST needs a live `api_key`. A key presented is always
checked and its use audited (core.open311.keys). Errors are the spec's list of
{code, description} with 400, 403 or 404, in the format asked for (XML when none can be told).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sanic import Request, Sanic, response
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import read_scope, session_scope
from core.open311 import intake, keys, requests, services
from core.open311.intake import Invalid, Submission
from core.open311.requests import BadQuery, Query
from web.open311.formats import FORMATS, errors, render

PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-07T00:00:00+08:00"  # when this endpoint last changed what it offers
_LEAF = re.compile(r"^(?P<name>.+)\.(?P<fmt>[a-z]+)$")
_ATTRIBUTE = re.compile(r"^attribute\[(?P<code>[A-Za-z0-9_-]+)\](?:\[\])?$")
log = logging.getLogger("gridbot.web.open311")
T = TypeVar("T")


class Problem(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def _split(leaf: str) -> tuple[str, str]:
    match = _LEAF.match(leaf)
    if match is None or match["fmt"] not in FORMATS:
        raise Problem(404, f"no such resource: {leaf} (resources end in .xml or .json)")
    return match["name"], match["fmt"]


def _format_of(path: str) -> str:
    return "json" if path.endswith(".json") else "xml"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.ctx.settings
    return settings


async def _db(request: Request, work: Callable[[Session], T], *, write: bool = False) -> T:
    factory = request.app.ctx.factory

    def run() -> T:
        with (session_scope(factory) if write else read_scope(factory)) as session:
            return work(session)

    return await asyncio.to_thread(run)


def _param(request: Request, name: str) -> str | None:
    """A parameter from the form (POST) or the query string."""
    for source in (request.form if request.method == "POST" else None, request.args):
        if source and name in source:
            value = source.get(name)
            return value if isinstance(value, str) else None
    return None


async def _key(request: Request, use: str, *, required: bool) -> Any:
    presented = _param(request, "api_key")
    if not presented:
        if required:
            raise Problem(403, "api_key is required")
        return None
    key = await _db(request, lambda s: keys.authenticate(s, presented, use), write=True)
    if key is None:
        raise Problem(403, "api_key is not valid (unknown or revoked)")
    return key


async def _public(request: Request, use: str) -> None:
    await _key(request, use, required=_settings(request).open311_get_needs_key)


def _base(request: Request) -> str:
    configured = _settings(request).web_public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def _media_url(request: Request) -> Callable[[str], str]:
    base = _base(request)
    return lambda number: f"{base}{PREFIX}/media/{number}/1"


# -- the resources --------------------------------------------------------------


async def discovery(request: Request, fmt: str) -> HTTPResponse:
    await _public(request, "GET discovery")
    return render(fmt, "discovery", {
        "changeset": CHANGESET,
        "contact": "The community office that runs gridbot (see docs/open311.md).",
        "key_service": "GETs are public. POST requests needs an api_key: the operator issues one per client "
                       "system (gridbot apikey create NAME). Emergencies are not taken here: call 119, 120 or 110.",
        "max_requests": requests.MAX_REQUESTS,
        "endpoints": [{"specification": SPECIFICATION, "url": _base(request) + PREFIX, "changeset": CHANGESET,
                       "type": "production", "formats": ["text/xml", "application/json"]}],
    })


async def service_list(request: Request, fmt: str) -> HTTPResponse:
    await _public(request, "GET services")
    return render(fmt, "services", await _db(request, services.services))


async def service_definition(request: Request, code: str, fmt: str) -> HTTPResponse:
    await _public(request, "GET service definition")

    def work(s: Session) -> dict[str, object] | None:
        category = services.find(s, code)
        return services.definition(category) if category is not None else None

    found = await _db(request, work)
    if found is None:
        raise Problem(404, f"service_code {code!r} not found")
    return render(fmt, "service_definition", found)


def _list(request: Request, name: str) -> list[str]:
    value = _param(request, name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _date(request: Request, name: str) -> datetime | None:
    value = _param(request, name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, f"{name} is not a W3C date-time such as 2026-12-01T00:00:00+08:00") from None
    if parsed.tzinfo is None:
        raise Problem(400, f"{name} needs a time zone (Z or +08:00)")
    return parsed


async def request_list(request: Request, fmt: str) -> HTTPResponse:
    await _public(request, "GET requests")
    query = Query(ids=_list(request, "service_request_id"), service_codes=_list(request, "service_code"),
                  start=_date(request, "start_date"), end=_date(request, "end_date"),
                  statuses=_list(request, "status"))
    bad = [s for s in query.statuses if s not in ("open", "closed")]
    if bad:
        raise Problem(400, f"status is open or closed, not {bad[0]!r}")
    tz, media_url = _settings(request).tz, _media_url(request)

    def work(s: Session) -> list[dict[str, object]]:
        return requests.publish(requests.search(s, query), tz=tz, media_url=media_url)

    try:
        found = await _db(request, work)
    except BadQuery as exc:
        raise Problem(400, str(exc)) from None
    return render(fmt, "service_requests", found)


async def request_one(request: Request, number: str, fmt: str) -> HTTPResponse:
    await _public(request, "GET request")
    tz, media_url = _settings(request).tz, _media_url(request)

    def work(s: Session) -> list[dict[str, object]]:
        found = requests.one(s, number)
        return requests.publish(found, tz=tz, media_url=media_url) if found is not None else []

    published = await _db(request, work)
    if not published:
        raise Problem(404, f"service_request_id {number!r} not found")
    return render(fmt, "service_requests", published)


async def token(request: Request, value: str, fmt: str) -> HTTPResponse:
    await _public(request, "GET token")

    def work(s: Session) -> str | None:
        ticket = intake.by_token(s, value)
        return ticket.number if ticket is not None and not ticket.urgent else None

    number = await _db(request, work)
    if number is None:
        raise Problem(404, f"token {value!r} not found")
    return render(fmt, "service_requests", [{"service_request_id": number, "token": value}])


def _float(request: Request, name: str) -> float | None:
    value = _param(request, name)
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise Problem(400, f"{name} is not a number") from None


def _submission(request: Request) -> Submission:
    code = (_param(request, "service_code") or "").strip()
    if not code:
        raise Problem(400, "service_code is required")
    lat, lon = _float(request, "lat"), _float(request, "long")
    if (lat is None) != (lon is None):
        raise Problem(400, "lat and long go together")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Problem(400, "lat or long is out of range")
    attributes: dict[str, list[str]] = {}
    for name, values in (request.form or {}).items():
        match = _ATTRIBUTE.match(name)
        if match:
            attributes.setdefault(match["code"], []).extend(v for v in values if isinstance(v, str))
    return Submission(
        service_code=code, description=_param(request, "description") or "", lat=lat, lon=lon,
        address_string=_param(request, "address_string"), address_id=_param(request, "address_id"),
        attributes=attributes, first_name=_param(request, "first_name"), last_name=_param(request, "last_name"),
        phone=_param(request, "phone"), email=_param(request, "email"),
        contact_consent=(_param(request, "contact_consent") or "").strip().lower() in ("true", "1", "yes"),
        media_url=_param(request, "media_url"))


async def create_request(request: Request, fmt: str) -> HTTPResponse:
    key = await _key(request, "POST requests", required=True)
    submission = _submission(request)
    tz = _settings(request).tz
    routers = request.app.ctx.routers
    router = await asyncio.to_thread(routers.get) if routers.due() else routers.get()

    def work(s: Session) -> dict[str, object]:
        filed = intake.file_request(s, router, key, submission, tz=tz)
        return {"service_request_id": filed.ticket.number, "token": filed.token, "service_notice": filed.notice,
                "account_id": None}

    try:
        answer = await _db(request, work, write=True)
    except Invalid as exc:
        raise Problem(400, str(exc)) from None
    log.info("Open311 request %s filed by key %s", answer["service_request_id"], key.id)
    return render(fmt, "service_requests", [answer])


async def media(request: Request, number: str, index: str) -> HTTPResponse:
    """The photo of a published request, fetched once from Telegram with the bot's token (which
    never leaves this process) and kept under var/media/."""
    await _public(request, "GET media")
    settings = _settings(request)
    if not index.isdigit() or not settings.telegram_bot_token:
        raise Problem(404, "no such photo")
    file_id = await _db(request, lambda s: requests.photo_file_id(s, number, int(index)))
    if file_id is None:
        raise Problem(404, "no such photo")
    media_dir: Path = request.app.ctx.media_dir
    path = media_dir / (hashlib.sha256(file_id.encode()).hexdigest() + ".jpg")
    if not path.exists():
        content = await _download(settings, file_id)
        if content is None:
            raise Problem(404, "the photo cannot be fetched now")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".part").write_bytes(content)
        path.with_suffix(".part").replace(path)
    return await response.file(str(path), mime_type="image/jpeg")


async def _download(settings: Settings, file_id: str) -> bytes | None:
    api = settings.telegram_api_url.rstrip("/")
    bot = f"bot{settings.telegram_bot_token}"
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            meta = (await client.get(f"{api}/{bot}/getFile", params={"file_id": file_id})).json()
            file_path = (meta.get("result") or {}).get("file_path") if meta.get("ok") else None
            if not file_path:
                return None
            got = await client.get(f"{api}/file/{bot}/{file_path}")
            return got.content if got.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        log.warning("a photo could not be fetched from the Bot API")
        return None


# -- routing -----------------------------------------------------------------------


def register(app: Sanic) -> None:
    @app.route(f"{PREFIX}/<leaf>", methods=["GET", "POST"])
    async def _top(request: Request, leaf: str) -> HTTPResponse:
        name, fmt = _split(leaf)
        if request.method == "POST":
            if name != "requests":
                raise Problem(404, f"{leaf} takes no POST")
            return await create_request(request, fmt)
        handler = {"discovery": discovery, "services": service_list, "requests": request_list}.get(name)
        if handler is None:
            raise Problem(404, f"no such resource: {leaf}")
        return await handler(request, fmt)

    @app.get(f"{PREFIX}/<collection>/<leaf>")
    async def _item(request: Request, collection: str, leaf: str) -> HTTPResponse:
        name, fmt = _split(leaf)
        handler = {"services": service_definition, "requests": request_one, "tokens": token}.get(collection)
        if handler is None:
            raise Problem(404, f"no such resource: {collection}/{leaf}")
        return await handler(request, name, fmt)

    @app.get(f"{PREFIX}/media/<number>/<index>")
    async def _media(request: Request, number: str, index: str) -> HTTPResponse:
        return await media(request, number, index)

    @app.exception(Problem)
    async def _problem(request: Request, exc: Problem) -> HTTPResponse:
        return errors(_format_of(request.path), exc.status, exc.description)

    @app.exception(SanicException)
    async def _sanic(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        if request.path.startswith(PREFIX):
            return errors(_format_of(request.path), status, str(exc) or "error")
        return response.json({"error": str(exc)}, status=status)


__all__ = ["register", "PREFIX"]
