"""The command centre's 战时 page (/centre/mobilise): the incidents the person follows, the map of
one of them (its grids coloured by whether anyone is on site, ECharts like the main map), each
grid's answers, the open tasks; the map redrawn from /centre/mobilise.json every few seconds; the
report as CSV (/centre/mobilise/<id>/report.csv). Data from core.centre.mobilise, scoped by the person's
view and mobilise.roll."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sanic import Request, Sanic, response
from sanic.response import HTTPResponse
from sqlalchemy.orm import Session

from core.centre import mobilise
from core.mobilise.report import CSV_COLUMNS
from core.models import utcnow
from web.centre import exports
from web.centre.auth import PATH, db, settings_of, who


def _chosen(request: Request) -> int | None:
    value = request.args.get("incident") or ""
    return int(value) if value.isdigit() else None


async def mobilise_json(request: Request) -> HTTPResponse:
    me = await who(request)
    data = await db(request, lambda s: mobilise.map_json(s, me.view, _chosen(request)))
    if data is None:
        return response.json({"error": "not found"}, status=404)
    return response.json(data, ensure_ascii=False)


async def mobilise_csv(request: Request, incident: str) -> HTTPResponse:
    me = await who(request)
    if not incident.isdigit():
        return response.json({"error": "not found"}, status=404)

    def work(s: Session) -> tuple[int, list[list[object]]] | None:
        return mobilise.export(s, me.view, int(incident), utcnow())

    found = await db(request, work, write=True)
    if found is None:
        return response.json({"error": "not found"}, status=404)
    number, rows = found
    return exports.rows(f"mobilise-{number}.csv", CSV_COLUMNS, rows)


def register(app: Sanic, render: Callable[..., HTTPResponse]) -> None:
    """The routes; `render(request, template, **values)` is the centre's page renderer (its headers, CSP)."""

    async def mobilise_page(request: Request) -> HTTPResponse:
        me = await who(request)
        tz = settings_of(request).tz
        data: Any = await db(request, lambda s: mobilise.page(s, me.view, _chosen(request), utcnow(), tz))
        return render(request, "mobilise.html", who=me, p=data)

    app.add_route(mobilise_page, f"{PATH}/mobilise", methods=["GET"], name="centre_mobilise")
    app.add_route(mobilise_json, f"{PATH}/mobilise.json", methods=["GET"], name="centre_mobilise_json")
    app.add_route(mobilise_csv, f"{PATH}/mobilise/<incident>/report.csv", methods=["GET"], name="centre_mobilise_csv")
