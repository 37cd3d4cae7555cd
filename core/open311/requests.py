"""Open311 GET requests: tickets as they may be published (core.open311.privacy).

One query with the joins a published request needs, so 1,000 requests cost one round trip.
A request is published with its number as service_request_id, the status table's open or
closed (core.open311.statuses), our state in status_notes, the grid's branch as
agency_responsible (the community's triage queue while no grid is known), the masked
description, the registry's point and address, and a media_url on our own server when the
ticket has a photo. Never: the reporter, their contact, their words for the place, their
point, a Telegram file id. Emergencies are not published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, TypeDecorator, literal, select, type_coerce
from sqlalchemy.orm import Session, aliased

from core.messages import t
from core.models import (
    Branch,
    Building,
    Category,
    Community,
    Grid,
    Landmark,
    Ticket,
    TicketStatus,
    utcnow,
)
from core.open311 import privacy, statuses

DEFAULT_DAYS = 90  # without start_date and end_date: the last 90 days
MAX_SPAN_DAYS = 90  # a range may not span more than this
MAX_REQUESTS = 1000


@dataclass
class Query:
    ids: list[str] = field(default_factory=list)  # service_request_id: given, everything else is ignored
    service_codes: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    statuses: list[str] = field(default_factory=list)  # "open", "closed"


class BadQuery(ValueError):
    pass


def window(query: Query, now: datetime) -> tuple[datetime, datetime]:
    """The requested_datetime range searched: the spec's defaults and its 90-day cap."""
    if query.start is None and query.end is None:
        return now - timedelta(days=DEFAULT_DAYS), now
    if query.start is None:
        assert query.end is not None
        start, end = query.end - timedelta(days=DEFAULT_DAYS), query.end
    else:
        start = query.start
        end = query.end if query.end is not None else min(now, start + timedelta(days=MAX_SPAN_DAYS))
    if end < start:
        raise BadQuery("end_date is before start_date")
    if end - start > timedelta(days=MAX_SPAN_DAYS):
        raise BadQuery(f"start_date and end_date may not span more than {MAX_SPAN_DAYS} days")
    return start, end


class _Stamp(TypeDecorator[datetime]):
    """Reads a stored UTC time fast: SQLite hands back text, parsed here by the C
    datetime.fromisoformat (SQLAlchemy's own parser took a third of a 1,000-request answer);
    PostgreSQL's driver hands back a datetime already."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)


class _Text(TypeDecorator[str]):
    """A JSON column read as it comes (text on SQLite; PostgreSQL's driver decodes it): only
    whether a ticket has a photo matters here, and decoding 1,000 lists did not."""

    impl = String
    cache_ok = True


def _has_photo(value: Any) -> bool:
    return bool(value) and value != "[]"


def _select() -> Select[Any]:
    community = aliased(Community)
    return (select(Ticket.id, Ticket.number, Ticket.status, Ticket.category_code, Category.name.label("category"),
                   Ticket.description, type_coerce(Ticket.created_at, _Stamp).label("created_at"),
                   type_coerce(Ticket.updated_at, _Stamp).label("updated_at"),
                   type_coerce(Ticket.resolve_due_at, _Stamp).label("resolve_due_at"),
                   type_coerce(Ticket.photo_file_ids, _Text).label("photos"), Building.code.label("b_code"),
                   Building.address.label("b_address"), Building.lat.label("b_lat"), Building.lon.label("b_lon"),
                   Landmark.name.label("l_name"), Landmark.lat.label("l_lat"), Landmark.lon.label("l_lon"),
                   Ticket.grid_id, Branch.name.label("branch"), community.name.label("community"))
            .join(Category, Category.code == Ticket.category_code)
            .outerjoin(Building, Building.id == Ticket.building_id)
            .outerjoin(Landmark, Landmark.id == Ticket.landmark_id)
            .outerjoin(Branch, Branch.grid_id == Ticket.grid_id)
            .outerjoin(community, community.id == Ticket.community_id)
            .where(Ticket.urgent.is_(False), Ticket.status != TicketStatus.withdrawn))


@dataclass(frozen=True)
class Published:
    """Rows and the grids they name (name, polygon by id): what `publish` needs."""

    rows: list[Any]
    grids: dict[int, tuple[str, tuple[float, float] | None]]  # name and a point inside it, by id


def _grids(session: Session, rows: list[Any]) -> dict[int, tuple[str, tuple[float, float] | None]]:
    ids = {r.grid_id for r in rows if r.grid_id is not None}
    if not ids:
        return {}
    return {g.id: (g.name, privacy.grid_point(g.polygon))
            for g in session.execute(select(Grid.id, Grid.name, Grid.polygon).where(Grid.id.in_(ids)))}


def _unindexed(column: Any) -> Any:
    return type_coerce(column, String).op("||")(literal(""))


def search(session: Session, query: Query, *, now: datetime | None = None) -> Published:
    """Rows of the published tickets the query asks for, newest first, at most MAX_REQUESTS."""
    now = now or utcnow()
    stmt = _select()
    if query.ids:
        stmt = stmt.where(Ticket.number.in_(query.ids[:MAX_REQUESTS]))
    else:
        start, end = window(query, now)
        stmt = stmt.where(Ticket.created_at >= start, Ticket.created_at <= end)
        # `|| ''` keeps the planner off the status and category indexes: with a limit of 1,000
        # the newest first, walking ix_tickets_created_at and filtering is fast, and sorting the
        # tens of thousands of open tickets another index finds is not (4x on SQLite).
        if query.service_codes:
            stmt = stmt.where(_unindexed(Ticket.category_code).in_(query.service_codes))
        if query.statuses:
            ours: list[str] = []
            for status in dict.fromkeys(query.statuses):
                ours += [s.value for s in statuses.ours(status)]
            stmt = stmt.where(_unindexed(Ticket.status).in_(ours))
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(MAX_REQUESTS)
    rows = list(session.execute(stmt))
    return Published(rows, _grids(session, rows))


def one(session: Session, number: str) -> Published | None:
    row = session.execute(_select().where(Ticket.number == number)).first()
    return Published([row], _grids(session, [row])) if row is not None else None


def _iso(at: datetime | None, tz: ZoneInfo) -> str | None:
    return at.astimezone(tz).isoformat(timespec="seconds") if at is not None else None


def publish(found: Published, *, tz: ZoneInfo, media_url: Callable[[str], str]) -> list[dict[str, object]]:
    """The published requests (the fields of the spec's GET requests, in its order)."""
    notes = {s: statuses.notes(s) for s in TicketStatus}
    return [_request(row, found.grids.get(row.grid_id) if row.grid_id is not None else None, notes, tz, media_url)
            for row in found.rows]


def _request(row: Any, grid: tuple[str, tuple[float, float] | None] | None, notes: dict[TicketStatus, str], tz: ZoneInfo,
             media_url: Callable[[str], str]) -> dict[str, object]:
    place = privacy.public_place(
        building=(row.b_code, row.b_address, row.b_lat, row.b_lon) if row.b_code is not None else None,
        landmark=(row.l_name, row.l_lat, row.l_lon) if row.l_name is not None else None, grid=grid)
    if row.branch is not None:
        agency = row.branch
    elif grid is not None:
        agency = grid[0]
    else:
        agency = t("open311.agency.triage", community=row.community) if row.community else None
    return {
        "service_request_id": row.number,
        "status": statuses.public(row.status),
        "status_notes": notes[row.status],
        "service_name": row.category,
        "service_code": row.category_code,
        "description": privacy.mask(row.description),
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _iso(row.created_at, tz),
        "updated_datetime": _iso(row.updated_at, tz),
        "expected_datetime": _iso(row.resolve_due_at, tz),
        "address": place.address,
        "address_id": place.address_id,
        "zipcode": None,
        "lat": place.lat,
        "long": place.lon,
        "media_url": media_url(row.number) if _has_photo(row.photos) else None,
    }


def photo_file_id(session: Session, number: str, index: int = 1) -> str | None:
    """The Telegram file id behind a published request's media_url (never published itself)."""
    ticket = session.scalar(select(Ticket).where(Ticket.number == number, Ticket.urgent.is_(False),
                                                 Ticket.status != TicketStatus.withdrawn))
    if ticket is None or not 1 <= index <= len(ticket.photo_file_ids or []):
        return None
    return ticket.photo_file_ids[index - 1]
