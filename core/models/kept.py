"""Closed months' figures, computed once from the events and kept (core.centre.kept), and the
versions that tell when their history changed.

A month's kept figures are good while the versions of the UTC months it overlaps are as they were
when they were computed. Every ticket event bumps the version of the UTC months of the dates that
place its ticket in a month's figures — filed, first response and resolve limits — and of its own
time (an answer, an overdue mark), as part of the event's own INSERT (a mapper event, so no code
path that writes an event through the ORM can forget it). Dates of the last MARGIN are left alone:
a month is kept only once it ended more than MARGIN ago, so no kept month holds them, and the
events of the day (the busy path) write nothing more.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column, object_session

from core.models.base import Base, UTCDateTime, utcnow
from core.models.tickets import Ticket, TicketEvent

MARGIN = timedelta(days=1)


def utc_month(at: datetime) -> int:
    """A UTC calendar month as one number (year * 12 + month - 1)."""
    at = at.astimezone(timezone.utc)
    return at.year * 12 + at.month - 1


class KeptFigures(Base):
    """One grid's figures (core.tickets.rates.Figures as JSON) for one closed local month."""

    __tablename__ = "kept_figures"
    __table_args__ = (UniqueConstraint("month_start", "grid_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month_start: Mapped[datetime] = mapped_column(UTCDateTime())
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"))
    # the sum of the overlapping UTC months' versions when computed, and the rates code's fingerprint
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FigureVersion(Base):
    """How often the history of a UTC month's tickets has changed since figures were first kept."""

    __tablename__ = "kept_figure_versions"

    month: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0)


def _dates(connection: Connection, target: TicketEvent) -> list[datetime | None]:
    session = object_session(target)
    ticket = target.__dict__.get("ticket")
    if ticket is None and session is not None and target.ticket_id is not None:
        ticket = session.identity_map.get(session.identity_key(Ticket, target.ticket_id))
    if isinstance(ticket, Ticket) and "created_at" in ticket.__dict__:
        return [ticket.created_at, ticket.first_respond_due_at, ticket.first_resolve_due_at]
    row = connection.execute(select(Ticket.created_at, Ticket.first_respond_due_at, Ticket.first_resolve_due_at)
                             .where(Ticket.id == target.ticket_id)).first()
    return list(row) if row is not None else []


@event.listens_for(TicketEvent, "after_insert")
def _history_changed(_mapper: Mapper[Any], connection: Connection, target: TicketEvent) -> None:
    cutoff = utcnow() - MARGIN
    months = sorted({utc_month(d) for d in [target.at, *_dates(connection, target)] if d is not None and d < cutoff})
    if not months:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    table = FigureVersion.__table__
    for month in months:
        stmt = dialect.insert(table).values(month=month, version=1)
        connection.execute(stmt.on_conflict_do_update(index_elements=["month"],
                                                      set_={"version": table.c.version + 1}))
