"""Closed months' figures, computed once from the events (core.tickets.rates.figures) and kept.

The figures page asks for 14 months at once (the 12-month trend, the month and the one before);
only the months still open are computed on every view. A closed month's figures per grid are read
from `kept_figures` while the history under them is unchanged: core.models.kept bumps a version
of a UTC month whenever an event lands on a ticket whose dates (filed, first limits) or whose event
time fall in it, and a kept row is good only while the versions of the UTC months its local month
overlaps add up to what they did when it was computed. The versions are read before the figures
are computed, so an event committed in between makes the row stale at once, never wrong.

A month is kept only once it ended more than MARGIN ago (core.models.kept): dates that recent are
not versioned, so that the day's events write nothing more. A change to core/tickets/rates.py
changes FORMAT, which retires every kept row.

Reading is done in the caller's (read-only) session; what was computed afresh is written after,
in a short write transaction of its own (`save`), so a page never holds the write lock while it
computes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import FigureVersion, KeptFigures, utcnow
from core.models.kept import MARGIN, utc_month
from core.tickets import rates

FORMAT = hashlib.sha256(Path(rates.__file__).read_bytes()).hexdigest()[:16]
NAMES = tuple(f.name for f in fields(rates.Figures))


def dump(fig: rates.Figures) -> dict[str, Any]:
    return {name: (dict(value) if isinstance(value, Counter) else value)
            for name, value in ((n, getattr(fig, n)) for n in NAMES)}


def load(data: dict[str, Any]) -> rates.Figures | None:
    """The figures a row holds, or None if they were written by other rates code (other fields)."""
    if set(data) != set(NAMES):
        return None
    values: dict[str, Any] = {n: (Counter(v) if isinstance(getattr(rates.Figures(), n), Counter) else v)
                              for n, v in data.items()}
    return rates.Figures(**values)


def version(session: Session, start: datetime, end: datetime) -> int:
    """The sum of the versions of the UTC months that [start, end) overlaps."""
    months = range(utc_month(start), utc_month(end - timedelta(microseconds=1)) + 1)
    return int(session.scalar(select(func.coalesce(func.sum(FigureVersion.version), 0))
                              .where(FigureVersion.month.in_(list(months)))) or 0)


@dataclass(frozen=True)
class Fresh:
    start: datetime
    grid_id: int
    version: int
    figures: rates.Figures


@dataclass
class Keeper:
    """Figures of any month for a set of grids: kept ones where good, the rest computed (and noted
    in `fresh` for `save`). `now` decides which months are closed."""

    now: datetime = field(default_factory=utcnow)
    fresh: list[Fresh] = field(default_factory=list)
    computed: int = 0  # how many months were computed from the events (for tests and the bench)
    _open: dict[tuple[datetime, datetime, tuple[int, ...]], dict[int | None, rates.Figures]] = field(
        default_factory=dict)  # an open month asked twice in one page is computed once

    def figures(self, session: Session, start: datetime, end: datetime, grid_ids: Iterable[int]
                ) -> dict[int | None, rates.Figures]:
        ids = sorted(set(grid_ids))
        if not ids:
            return {}
        if end > self.now - MARGIN:  # still open, or too recently closed: from the events
            key = (start, end, tuple(ids))
            if key not in self._open:
                self.computed += 1
                self._open[key] = rates.figures(session, start, end, ids)
            return self._open[key]
        tag = version(session, start, end)  # before the figures are read (see the module docstring)
        out: dict[int | None, rates.Figures] = {}
        for grid_id, data in session.execute(select(KeptFigures.grid_id, KeptFigures.figures).where(
                KeptFigures.month_start == start, KeptFigures.grid_id.in_(ids), KeptFigures.version == tag,
                KeptFigures.format == FORMAT)):
            fig = load(data)
            if fig is not None:
                out[grid_id] = fig
        missing = [g for g in ids if g not in out]
        if missing:
            self.computed += 1
            computed = rates.figures(session, start, end, missing)
            for grid_id in missing:
                out[grid_id] = computed.get(grid_id, rates.Figures())
                self.fresh.append(Fresh(start, grid_id, tag, out[grid_id]))
        return out


def save(session: Session, fresh: list[Fresh]) -> int:
    """Keep what a Keeper computed (the newest computation of a month and grid wins). How many."""
    if not fresh:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = utcnow()
    table = KeptFigures.__table__
    for item in fresh:
        stmt = dialect.insert(table).values(month_start=item.start, grid_id=item.grid_id, version=item.version,
                                            format=FORMAT, figures=dump(item.figures), computed_at=now)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["month_start", "grid_id"],
            set_={"version": stmt.excluded.version, "format": stmt.excluded.format,
                  "figures": stmt.excluded.figures, "computed_at": stmt.excluded.computed_at}))
    return len(fresh)
