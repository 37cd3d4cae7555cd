"""`make bench-deadlines`: 20,000 open tickets whose time-limit steps fall due over 5 real minutes,
the scheduler restarted once in the middle.

Setup: a throw-away SQLite database (or --database-url, e.g. PostgreSQL), the demo community, a
bench category with short limits (respond in RESPOND s, resolve in RESOLVE s), and TICKETS
unclaimed tickets spread over the demo's grids, filed at times spread so that every step of
every ticket (reminders at 50 % and 80 % of each limit, overdue at each limit) falls due within
the window. Their steps are planned in the setup (core.tickets.deadlines.plan), as the leader
would have planned them when they were filed.

The real core.scheduler.DutyScheduler leads and sweeps (every DEADLINE_INTERVAL s); at the
middle of the window it is stopped (as the bot's post_shutdown does) and a new one started
on the same database.

Figures, from the database afterwards:
- lateness of a step = when its first message was committed (its outbox rows' created_at)
  minus its due time, for reminders (grid workers) and for escalations (the overdue card);
- duplicates = tickets with more than one overdue event for the same limit;
- missed = steps due before the end that were never done.

Last stdout line: {"tickets", "steps", "lateness_ms": {...}, "duplicates", "missed", ...}.
Targets: p99 lateness < 1000 ms, 0 duplicates, 0 missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from core.db import make_engine, make_session_factory, session_scope  # noqa: E402
from core.messages import t  # noqa: E402
from core.models import (  # noqa: E402
    Category,
    CategoryKind,
    DeadlineStep,
    Grid,
    OutboxMessage,
    Ticket,
    TicketDeadline,
    TicketEvent,
    TicketStatus,
)
from core.registry import demo  # noqa: E402
from core.scheduler import DutyScheduler  # noqa: E402
from core.tickets import deadlines  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
CATEGORY = "bench_deadlines"
ESCALATIONS = {DeadlineStep.respond_overdue, DeadlineStep.resolve_overdue}
GRACE = 15.0  # seconds after the last due time for the last steps


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup(url: str, tickets: int, window: float, respond: float, resolve: float, lead: float) -> datetime:
    """The tickets, their steps planned; returns when the window starts."""
    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    with session_scope(factory) as s:
        if s.get(Category, CATEGORY) is None:
            s.add(Category(code=CATEGORY, name="压测", kind=CategoryKind.general, description="压测用",
                           respond_minutes=1, resolve_minutes=2, active=False))
    start = datetime.now(timezone.utc) + timedelta(seconds=lead)
    # A ticket's first step is at 50 % of its response limit, its last at its resolve limit.
    first, last = respond * 0.5, resolve
    rng = random.Random(7)
    with session_scope(factory) as s:
        grids = [(g.id, g.community_id) for g in s.scalars(select(Grid).order_by(Grid.id))]
        base = int(s.scalar(select(func.count()).select_from(Ticket)) or 0)
        rows = []
        for i in range(tickets):
            filed = start - timedelta(seconds=first) + timedelta(seconds=rng.uniform(0, window - (last - first)))
            grid_id, community_id = grids[i % len(grids)]
            rows.append(dict(number=f"B{base + i:07d}", year=2026, seq=900_000 + base + i, category_code=CATEGORY,
                             urgent=False, community_id=community_id, grid_id=grid_id, description="压测工单",
                             photo_file_ids=[], anonymous=True, status=TicketStatus.accepted,
                             respond_due_at=filed + timedelta(seconds=respond),
                             resolve_due_at=filed + timedelta(seconds=resolve),
                             deadline_round=0, deadlines_pending=True, created_at=filed, updated_at=filed))
        for chunk in range(0, len(rows), 1000):
            s.execute(insert(Ticket), rows[chunk:chunk + 1000])
    limits = deadlines.Limits()
    with session_scope(factory) as s:
        pending = list(s.scalars(select(Ticket).where(Ticket.deadlines_pending.is_(True))))
        for ticket in pending:
            # the round started when it was filed: resolve_due - resolve limit (here in seconds)
            deadlines.plan(s, ticket, limits=limits, start=ticket.resolve_due_at - timedelta(seconds=resolve))
    engine.dispose()
    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite database")
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--window", type=float, default=300.0, help="seconds over which the steps fall due")
    parser.add_argument("--respond", type=float, default=60.0, help="the bench category's response limit, s")
    parser.add_argument("--resolve", type=float, default=120.0, help="its resolve limit, s")
    parser.add_argument("--lead", type=float, default=60.0,
                        help="seconds from the start of the setup to the window (the setup must end before it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tmp = tempfile.TemporaryDirectory(prefix="gridbot-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"

    started = time.monotonic()
    start = setup(url, args.tickets, args.window, args.respond, args.resolve, args.lead)
    factory = make_session_factory(make_engine(url))
    with session_scope(factory) as s:
        planned = s.scalar(select(func.count()).select_from(TicketDeadline)) or 0
    if datetime.now(timezone.utc) > start:
        print(f"the setup ran past the window's start: give a --lead over {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        return 2
    print(f"setup {time.monotonic() - started:.1f}s: {args.tickets} tickets, {planned} steps due "
          f"{start:%H:%M:%S}–{start + timedelta(seconds=args.window):%H:%M:%S} UTC", flush=True)

    first = DutyScheduler(url, tz=TZ, sync_interval=3600.0, poll_interval=1.0)
    first.start()
    if not first.wait_until_leader(30):
        print("the first scheduler never led", file=sys.stderr)
        return 1
    middle = start + timedelta(seconds=args.window / 2)
    time.sleep(max(0.0, (middle - datetime.now(timezone.utc)).total_seconds()))
    t_stop = time.monotonic()
    first.stop()
    second = DutyScheduler(url, tz=TZ, sync_interval=3600.0, poll_interval=1.0)
    second.start()
    second.wait_until_leader(30)
    print(f"restart: stopped and a new leader in {(time.monotonic() - t_stop) * 1000:.0f} ms", flush=True)
    end = start + timedelta(seconds=args.window)
    time.sleep(max(0.0, (end - datetime.now(timezone.utc)).total_seconds()) + GRACE)
    second.stop()

    with session_scope(factory) as s:
        steps = {d.id: d for d in s.scalars(select(TicketDeadline))}
        first_message: dict[int, datetime] = {}
        for key, created in s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.created_at)
                                      .where(OutboxMessage.dedupe_key.startswith("deadline:"))):
            step_id = int(key.split(":")[1])
            if step_id not in first_message or created < first_message[step_id]:
                first_message[step_id] = created
        overdue_notes = {t("deadline.overdue_respond"), t("deadline.overdue_resolve")}
        events = Counter(s.execute(select(TicketEvent.ticket_id, TicketEvent.note)
                                   .where(TicketEvent.note.in_(overdue_notes))).all())
    reminders, escalations = [], []
    by_step: dict[str, list[float]] = {}
    for step_id, created in first_message.items():
        step = steps[step_id]
        late = (created - step.due_at).total_seconds() * 1000
        (escalations if step.step in ESCALATIONS else reminders).append(late)
        by_step.setdefault(step.step.value, []).append(late)
    missed = sum(1 for d in steps.values() if d.done_at is None and d.due_at <= end)
    outcomes = Counter(d.outcome for d in steps.values())
    result = {
        "tickets": args.tickets,
        "steps": len(steps),
        "outcomes": {str(k): v for k, v in outcomes.items()},
        "lateness_ms": {
            "reminders": {"p50": round(percentile(reminders, 0.5), 1), "p99": round(percentile(reminders, 0.99), 1),
                          "n": len(reminders)},
            "escalations": {"p50": round(percentile(escalations, 0.5), 1),
                            "p99": round(percentile(escalations, 0.99), 1), "n": len(escalations)},
        },
        "p99_ms_by_step": {k: round(percentile(v, 0.99), 1) for k, v in sorted(by_step.items())},
        "duplicates": sum(1 for n in events.values() if n > 1),
        "missed": missed,
        "database": url.split(":", 1)[0],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result), flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
