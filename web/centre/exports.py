"""CSV exports of the command centre: UTF-8 with a BOM and CRLF lines, so Excel opens the
Chinese text as it is."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sanic import response
from sanic.response import HTTPResponse

from core.centre.figures import GridRates
from core.centre.listing import Row
from core.messages import t
from core.tickets.rates import Figures

BOM = "\ufeff"


def _csv(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> HTTPResponse:
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return response.raw(out.getvalue().encode("utf-8"), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Cache-Control": "no-store"})


def rows(filename: str, header: Sequence[str], values: Iterable[Sequence[object]]) -> HTTPResponse:
    """Any table as a CSV download (the 战时 report's rows: core.mobilise.report.csv_rows)."""
    return _csv(filename, header, values)


def tickets(rows: list[Row], tz: ZoneInfo) -> HTTPResponse:
    def local(at: datetime | None) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""

    header = [t(f"web.{k}") for k in ("number", "filed_at", "category", "grid", "status", "overdue", "urgent",
                                      "place", "description", "resolve_due")]
    return _csv("tickets.csv", header, ([r.number, local(r.created_at), r.category, r.grid, r.status,
                                         "1" if r.overdue else "0", "1" if r.urgent else "0", r.place,
                                         r.description, local(r.resolve_due_at)] for r in rows))


def _rate(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def rates(table: list[GridRates], start: datetime) -> HTTPResponse:
    names = ("filed", "response_rate", "resolve_rate", "solved_rate", "satisfaction_rate")
    header = [t("web.month"), t("web.grid")]
    for when in ("this_month", "last_month"):
        header += [f"{t(f'web.{when}')}{t(f'web.{name}')}" for name in names]
    header.append(t("web.overdue"))

    def values(fig: Figures) -> list[object]:
        return [fig.filed] + [_rate(getattr(fig, name)) for name in names[1:]]

    month = start.strftime("%Y-%m")
    return _csv(f"rates-{month}.csv", header,
                ([month, row.name or t("web.total"), *values(row.this), *values(row.before), row.this.overdue]
                 for row in table))
