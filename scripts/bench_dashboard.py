"""`make bench-dashboard [TICKETS=100000]`: the command centre's main page, a ticket list filtered by
grid and month, and the figures page, over TICKETS tickets, on SQLite and PostgreSQL (TEST_POSTGRES_URL's
server).

Setup per database: bench_open311's (migrated, the demo community, TICKETS tickets over the last
360 days written in bulk), then each ticket's history as its status implies (`history`: the first
limits, filed and routed, claimed, resolved, the resident's answer), so the rates read real events,
and SQLite's planner statistics as the bot's leader refreshes them daily (core.db.refresh_statistics;
a year-old database has them, a bulk-loaded one not yet). Then the real web process (`python -m web`) on a free loopback port, a
community admin of 和平里 signed in through a /web link (the page, then the press), and REQUESTS
GETs of each page one after the other. The server's time is the `Server-Timing: app;dur=` header.

The figures page (this month beside the last, the 12-month trend) keeps closed months' figures
(core.centre.kept): its first view computes them all from the events (`figures_first_ms`), later
views read them back and compute only this month.

Last stdout line: {"bench": "dashboard", "tickets", "sqlite": {...}, "postgresql": {...},
"target_p95_ms": {"main": 300, "list": 200, "figures": 300}, "ok", "loadavg"}. Targets: server p95
of the main page < 300 ms, of the list filtered by grid and month < 200 ms (issue 18), of the
figures page < 300 ms (as a dashboard page).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_open311  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import create_engine, insert, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.centre import logins  # noqa: E402
from core.config import Settings  # noqa: E402
from core.db import (  # noqa: E402
    make_engine,
    make_session_factory,
    normalise_url,
    refresh_statistics,
    session_scope,
)
from core.messages import t  # noqa: E402
from core.models import Grid, Person, Ticket, TicketEvent, TicketStatus  # noqa: E402
from core.tickets.rate_reports import month_of  # noqa: E402

TARGETS = {"main": 300.0, "list": 200.0, "figures": 300.0}
TIMING = re.compile(r"app;dur=([\d.]+)")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)


def history(url: str, now: datetime) -> int:
    """Each seeded ticket's events as its status implies, and its first limits (24 h, 7 days); how
    many events. Written in bulk, around the ORM, before anything is kept (core.centre.kept)."""
    S = TicketStatus
    rng = random.Random(18)
    labels = {3: t("rating.3"), 2: t("rating.2"), 1: t("rating.1")}
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        handler = s.scalars(select(Person.id).where(Person.code == "P-0002")).one()
        rows = s.execute(select(Ticket.id, Ticket.status, Ticket.created_at)).all()
        limits, events = [], []
        for tid, status, filed in rows:
            limits.append({"id": tid, "first_respond_due_at": filed + timedelta(hours=24),
                           "first_resolve_due_at": filed + timedelta(days=7)})
            events.append(dict(ticket_id=tid, actor_id=None, at=filed, from_status=None, to_status=S.new))
            if status is S.new:
                continue
            events.append(dict(ticket_id=tid, actor_id=None, at=filed, from_status=S.new, to_status=S.accepted))
            claimed = filed + timedelta(hours=rng.uniform(0.2, 30))
            if status is S.rejected:
                events.append(dict(ticket_id=tid, actor_id=handler, at=claimed, from_status=S.accepted,
                                   to_status=S.rejected, note="不属于网格事项"))
            if status not in (S.claimed, S.resolved, S.closed):
                continue
            events.append(dict(ticket_id=tid, actor_id=handler, at=claimed, from_status=S.accepted, to_status=S.claimed))
            resolved = min(now, claimed + timedelta(hours=rng.uniform(1, 200)))
            if status is S.claimed:
                continue
            events.append(dict(ticket_id=tid, actor_id=handler, at=resolved, from_status=S.claimed,
                               to_status=S.resolved, note="已处理"))
            if status is S.closed:
                score = rng.choice([3, 3, 3, 2, 0])
                events.append(dict(ticket_id=tid, actor_id=None if score == 0 else handler, at=resolved + timedelta(hours=5),
                                   from_status=S.resolved, to_status=S.closed,
                                   note=labels[score] if score else "未评价，自动关闭"))
        for chunk in range(0, len(limits), 5000):
            s.execute(update(Ticket), limits[chunk:chunk + 5000])
        for chunk in range(0, len(events), 5000):
            s.execute(insert(TicketEvent), events[chunk:chunk + 5000])
    refresh_statistics(engine)
    engine.dispose()
    return len(events)


def measure(url: str, requests: int, now: datetime) -> dict[str, object]:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        admin = s.scalars(select(Person).where(Person.code == "P-0069")).one()
        token = logins.issue(s, admin, minutes=10)
        grid_id = s.scalars(select(Grid.id).where(Grid.code == "G-HPL-01")).one()
    engine.dispose()
    start, end = month_of(now, Settings().tz)
    port = bench_open311._free_port()
    env = {**os.environ, "DATABASE_URL": url, "WEB_PORT": str(port), "WEB_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), "WEB_COOKIE_SECURE": "false"}
    server = subprocess.Popen([sys.executable, "-m", "web"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    pages = {"main": ("/centre/", {}),
             "list": ("/centre/tickets", {"grid": str(grid_id), "from": start.date().isoformat(),
                                          "to": (end - timedelta(days=1)).date().isoformat()}),
             "figures": ("/centre/figures", {})}
    timings: dict[str, list[float]] = {name: [] for name in pages}
    first: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the web process did not start")
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=60) as client:
            page = client.get(f"/centre/login/{token}")
            found = CSRF.search(page.text)
            if found is None:
                raise SystemExit(f"no login form: {page.status_code}")
            signed = client.post("/centre/login", data={"token": token, "csrf": found.group(1)})
            if signed.status_code != 303:
                raise SystemExit(f"sign-in refused: {signed.status_code}")
            for i in range(requests + 2):  # the first of each warms up
                for name, (path, params) in pages.items():
                    answer = client.get(path, params=params)
                    if answer.status_code != 200:
                        raise SystemExit(f"GET {path}: {answer.status_code}")
                    match = TIMING.search(answer.headers.get("server-timing", ""))
                    if i >= 1 and match:
                        timings[name].append(float(match.group(1)))
                    elif match:
                        first[name] = float(match.group(1))
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    out: dict[str, object] = {name: {"requests": len(v), "p50": _pct(v, 0.5), "p95": _pct(v, 0.95),
                                     "max": round(max(v), 1)} for name, v in timings.items()}
    out["figures_first_ms"] = round(first.get("figures", 0.0), 1)  # every closed month computed and kept
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    result: dict[str, object] = {"bench": "dashboard", "tickets": args.tickets, "target_p95_ms": TARGETS}
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        for kind in args.databases.split(","):
            admin = None
            name = None
            if kind == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'gridbot.db'}"
            else:
                admin = create_engine(normalise_url(args.postgres_url), isolation_level="AUTOCOMMIT")
                name = f"gridbot_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                url = make_url(normalise_url(args.postgres_url)).set(database=name).render_as_string(
                    hide_password=False)
            try:
                seconds = bench_open311.seed(url, args.tickets, now)
                started = time.monotonic()
                events = history(url, now)
                print(f"{kind}: {args.tickets} tickets written in {seconds:.0f} s, {events} events in "
                      f"{time.monotonic() - started:.0f} s", flush=True)
                figures = measure(url, args.requests, now)
                print(f"{kind}: {json.dumps(figures)}", flush=True)
                result[kind] = figures
                ok = ok and all(figures[page]["p95"] < TARGETS[page] for page in TARGETS)  # type: ignore[index]
            finally:
                if admin is not None:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
    result["ok"] = ok
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
