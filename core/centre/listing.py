"""The command centre's ticket list and ticket page, scoped to what a person sees (core.centre.scope).

One query answers the list, its CSV and its count: `Filters` are the list's form (grid, category,
status, overdue, a date range of filing in local days, text in the description, place or number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from core.centre.scope import View
from core.messages import t
from core.models import Building, Category, Grid, Person, Ticket, TicketEvent, TicketStatus
from core.presentation.cards import status_name

S = TicketStatus
# Still waiting on the grid (or, in triage, on the community): what the map counts as open and what
# can be overdue (core.tickets.deadlines.UNRESOLVED).
ACTIVE = (S.new, S.accepted, S.claimed, S.escalated, S.triage, S.reopened)
PAGE = 50


@dataclass(frozen=True)
class Filters:
    grid_id: int | None = None
    category: str | None = None
    status: str | None = None
    overdue: bool = False
    date_from: date | None = None
    date_to: date | None = None
    text: str | None = None

    @classmethod
    def parse(cls, args: dict[str, str]) -> Filters:
        """From a query string's values; anything unreadable counts as not given."""
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(args.get(name, "").strip())
            except ValueError:
                return None
        grid = args.get("grid", "").strip()
        status = args.get("status", "").strip()
        return cls(grid_id=int(grid) if grid.isdigit() else None,
                   category=args.get("category", "").strip() or None,
                   status=status if status in S.__members__ or status == "active" else None,
                   overdue=args.get("overdue", "") in ("1", "on", "true"),
                   date_from=day("from"), date_to=day("to"),
                   text=(args.get("q", "").strip()[:100] or None))

    def query_string(self) -> dict[str, str]:
        out = {"grid": str(self.grid_id or ""), "category": self.category or "", "status": self.status or "",
               "overdue": "1" if self.overdue else "", "from": self.date_from.isoformat() if self.date_from else "",
               "to": self.date_to.isoformat() if self.date_to else "", "q": self.text or ""}
        return {k: v for k, v in out.items() if v}


def in_view(view: View) -> Any:
    """The condition that keeps a query's tickets to the person's grids (and their communities'
    tickets without a grid)."""
    parts: list[Any] = []
    if view.grid_ids:
        parts.append(Ticket.grid_id.in_(sorted(view.grid_ids)))
    if view.community_ids:
        parts.append(Ticket.grid_id.is_(None) & Ticket.community_id.in_(sorted(view.community_ids)))
    return or_(*parts) if parts else false()


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def select_tickets(view: View, filters: Filters, tz: ZoneInfo) -> Select[Any]:
    query = select(Ticket).where(in_view(view))
    if filters.grid_id is not None:
        query = query.where(Ticket.grid_id == filters.grid_id)
    if filters.category:
        query = query.where(Ticket.category_code == filters.category)
    if filters.status == "active":
        query = query.where(Ticket.status.in_(ACTIVE))
    elif filters.status:
        query = query.where(Ticket.status == TicketStatus(filters.status))
    if filters.overdue:
        query = query.where(Ticket.overdue_at.is_not(None), Ticket.status.in_(ACTIVE))
    if filters.date_from:
        query = query.where(Ticket.created_at >= _local_midnight(filters.date_from, tz))
    if filters.date_to:
        query = query.where(Ticket.created_at < _local_midnight(filters.date_to + timedelta(days=1), tz))
    if filters.text:
        like = "%" + filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Ticket.description.like(like, escape="\\"), Ticket.location_text.like(like, escape="\\"),
                                Ticket.number.like(like, escape="\\")))
    return query


@dataclass
class Row:
    id: int
    number: str
    created_at: datetime
    category: str
    grid: str
    status: str
    overdue: bool
    urgent: bool
    place: str
    description: str
    resolve_due_at: datetime | None


@dataclass
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int


def _names(session: Session) -> tuple[dict[str, str], dict[int, str]]:
    categories = dict(list(session.execute(select(Category.code, Category.name)).tuples()))
    grids = dict(list(session.execute(select(Grid.id, Grid.name)).tuples()))
    return categories, grids


def rows_of(session: Session, tickets: list[Ticket]) -> list[Row]:
    categories, grids = _names(session)
    building_ids = {tk.building_id for tk in tickets if tk.building_id is not None}
    buildings = dict(list(session.execute(select(Building.id, Building.address)
                                          .where(Building.id.in_(building_ids))).tuples())) if building_ids else {}
    return [Row(id=tk.id, number=tk.number, created_at=tk.created_at,
                category=categories.get(tk.category_code, tk.category_code),
                grid=grids.get(tk.grid_id, "") if tk.grid_id else t("web.no_grid"),
                status=status_name(tk.status), overdue=tk.overdue_at is not None and tk.status in ACTIVE,
                urgent=tk.urgent, place=buildings.get(tk.building_id or 0) or tk.location_text or "",
                description=tk.description, resolve_due_at=tk.resolve_due_at) for tk in tickets]


def page_of(session: Session, view: View, filters: Filters, tz: ZoneInfo, page: int = 1, size: int = PAGE) -> Page:
    """One page of the list, newest first, with the count of all that match."""
    query = select_tickets(view, filters, tz)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    tickets = list(session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                   .limit(size).offset((page - 1) * size)))
    return Page(rows_of(session, tickets), total, page, pages)


def all_rows(session: Session, view: View, filters: Filters, tz: ZoneInfo, limit: int = 100_000) -> list[Row]:
    """Every matching ticket (the CSV), newest first."""
    query = select_tickets(view, filters, tz).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    return rows_of(session, list(session.scalars(query)))


# -- one ticket ------------------------------------------------------------------------


@dataclass
class EventLine:
    id: int
    at: datetime
    who: str
    change: str
    note: str
    kind: str


@dataclass
class Detail:
    ticket: Ticket
    row: Row
    events: list[EventLine] = field(default_factory=list)
    photos: int = 0
    last_event_id: int = 0


def find(session: Session, view: View, number: str) -> Ticket | None:
    """The ticket of that number if the person sees it; None otherwise (unknown and not yours
    look the same, so a URL tells nothing about another grid)."""
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    return ticket if ticket is not None and view.sees(ticket) else None


# Events that leave the status as it was name themselves as the chat's history does (event.<kind>).
NAMED = frozenset({"overdue", "urge", "supplement", "category", "transfer", "merge"})


def _change(event: TicketEvent, grids: dict[int, str]) -> str:
    if event.kind == "status" and event.from_status is not None and event.from_status != event.to_status:
        return f"{status_name(event.from_status)} → {status_name(event.to_status)}"
    if event.kind == "status" and event.from_status is None:
        return t("web.event_filed", status=status_name(event.to_status))
    if event.kind == "transfer" and event.detail:  # which grid to which, beside the status it left
        return t("web.event_transfer", from_grid=grids.get(event.detail.get("from") or 0, ""),
                 to_grid=grids.get(event.detail.get("to") or 0, ""))
    if event.kind == "remark":
        return t("web.event_remark")
    return t(f"event.{event.kind}") if event.kind in NAMED else event.kind


def detail(session: Session, ticket: Ticket) -> Detail:
    events = list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                  .order_by(TicketEvent.at, TicketEvent.id)))
    actors = {p.id: p.display_name for p in session.scalars(
        select(Person).where(Person.id.in_({e.actor_id for e in events if e.actor_id is not None})))}
    _categories, grids = _names(session)
    lines = [EventLine(id=e.id, at=e.at, who=actors.get(e.actor_id, "") if e.actor_id else t("web.system"),
                       change=_change(e, grids), note=e.note or "", kind=e.kind) for e in events]
    photos = len(ticket.photo_file_ids or []) + (1 if ticket.resolution_photo_id else 0)
    return Detail(ticket, rows_of(session, [ticket])[0], lines, photos, max((e.id for e in events), default=0))


def photo_file_id(ticket: Ticket, index: int) -> str | None:
    """The index-th photo (1-based): the resident's, then the handler's of the resolution."""
    photos = list(ticket.photo_file_ids or []) + ([ticket.resolution_photo_id] if ticket.resolution_photo_id else [])
    return photos[index - 1] if 1 <= index <= len(photos) else None


def last_change(session: Session, view: View, ticket_id: int | None = None) -> int:
    """The newest event id in view (or of one ticket): pages poll it to show a change made in chat."""
    if ticket_id is not None:
        return session.scalar(select(func.max(TicketEvent.id)).where(TicketEvent.ticket_id == ticket_id)) or 0
    # newest first until one is in view: PostgreSQL walks the key backwards and stops (40 ms -> 3 ms
    # at 100,000 tickets, where max() over the view's events read them all)
    return session.scalar(select(TicketEvent.id).join(Ticket, Ticket.id == TicketEvent.ticket_id)
                          .where(in_view(view)).order_by(TicketEvent.id.desc()).limit(1)) or 0


def categories(session: Session) -> list[tuple[str, str]]:
    return list(session.execute(select(Category.code, Category.name).order_by(Category.code)).tuples())
