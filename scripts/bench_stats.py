"""`make bench-stats`: one month's rates over 100,000 historical tickets (a year of them).

Setup: a throw-away SQLite database (or --database-url, e.g. PostgreSQL), the demo community, and
TICKETS tickets filed evenly over the 12 months before --month's end across the demo's grids,
each with the events a real one has (filed, routed, claimed, resolved, and for most an answer),
written in bulk. Then `core.tickets.rates.figures` for the month, every grid, RUNS times.

Last stdout line: {"tickets", "events", "month", "seconds": {"min", "median", "max"}, ...}.
Target: under 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from core.db import make_engine, make_session_factory, session_scope  # noqa: E402
from core.messages import t  # noqa: E402
from core.models import Grid, Person, Ticket, TicketEvent, TicketStatus  # noqa: E402
from core.registry import demo  # noqa: E402
from core.tickets import rates  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus


def setup(url: str, tickets: int, end: datetime) -> int:
    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    rng = random.Random(11)
    with session_scope(factory) as s:
        grids = [(g.id, g.community_id) for g in s.scalars(select(Grid).order_by(Grid.id))]
        handler = s.scalars(select(Person.id).where(Person.code == "P-0002")).one()
        reporter = s.scalars(select(Person.id).where(Person.code == "P-0071")).one()
        base = int(s.scalar(select(func.max(Ticket.id))) or 0)
        start = end - timedelta(days=365)
        labels = {3: t("rating.3"), 2: t("rating.2"), 1: t("rating.1")}
        ticket_rows, event_rows = [], []
        for i in range(tickets):
            tid = base + i + 1
            filed = start + timedelta(seconds=rng.uniform(0, 365 * 86400))
            grid_id, community_id = grids[i % len(grids)]
            respond, resolve = timedelta(hours=24), timedelta(days=7)
            ticket_rows.append(dict(id=tid, number=f"H{tid:08d}", year=filed.year, seq=800_000_000 + tid,
                                    category_code=rng.choice(["parking", "noise", "sanitation", "property"]),
                                    urgent=False, community_id=community_id, grid_id=grid_id, description="历史工单",
                                    photo_file_ids=[], anonymous=True, status=S.closed, reporter_id=reporter,
                                    respond_due_at=filed + respond, resolve_due_at=filed + resolve,
                                    first_respond_due_at=filed + respond, first_resolve_due_at=filed + resolve,
                                    deadline_round=0, deadlines_pending=False, created_at=filed, updated_at=filed))
            claimed = filed + timedelta(hours=rng.uniform(0.2, 30))
            resolved = claimed + timedelta(hours=rng.uniform(1, 200))
            answered = resolved + timedelta(hours=rng.uniform(1, 60))
            event_rows += [
                dict(ticket_id=tid, actor_id=reporter, at=filed, from_status=None, to_status=S.new),
                dict(ticket_id=tid, actor_id=None, at=filed, from_status=S.new, to_status=S.accepted),
                dict(ticket_id=tid, actor_id=handler, at=claimed, from_status=S.accepted, to_status=S.claimed),
                dict(ticket_id=tid, actor_id=handler, at=resolved, from_status=S.claimed, to_status=S.resolved,
                     note="已处理"),
            ]
            score = rng.choice([3, 3, 3, 2, 1, 0])
            event_rows.append(dict(ticket_id=tid, actor_id=reporter if score else None, at=answered,
                                   from_status=S.resolved, to_status=S.reopened if score == 1 else S.closed,
                                   note=labels[score] if score else "未评价，自动关闭"))
        for chunk in range(0, len(ticket_rows), 2000):
            s.execute(insert(Ticket), ticket_rows[chunk:chunk + 2000])
        for chunk in range(0, len(event_rows), 5000):
            s.execute(insert(TicketEvent), event_rows[chunk:chunk + 5000])
    engine.dispose()
    return len(event_rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite database")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--month", default="2026-11")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="gridbot-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    first = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=TZ)
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    started = time.monotonic()
    events = setup(url, args.tickets, following)
    print(f"setup {time.monotonic() - started:.1f}s: {args.tickets} tickets, {events} events", flush=True)
    factory = make_session_factory(make_engine(url))
    seconds, filed = [], 0
    for _ in range(args.runs):
        began = time.perf_counter()
        with session_scope(factory) as s:
            everything = rates.total(rates.figures(s, first, following))
        seconds.append(time.perf_counter() - began)
        filed = everything.filed
    result = {"tickets": args.tickets, "events": events, "month": args.month, "filed_in_month": filed,
              "response_rate": everything.response_rate, "satisfaction_rate": everything.satisfaction_rate,
              "seconds": {"min": round(min(seconds), 3), "median": round(statistics.median(seconds), 3),
                          "max": round(max(seconds), 3)},
              "database": url.split(":", 1)[0]}
    print(json.dumps(result), flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
