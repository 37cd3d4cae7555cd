"""`make bench-open311`: Open311 GET requests answering 1,000 requests out of 100,000 tickets.

Setup, per database (a throw-away SQLite file, and a throw-away database on the PostgreSQL
server of TEST_POSTGRES_URL): migrated, categories and the demo community loaded, then TICKETS
tickets over the last 360 days written in bulk (a benchmark's fixture: straight inserts, not the
ticket service, which would take minutes), spread over the demo's buildings, grids without a
building and the triage queue, with a mix of states, descriptions holding a phone number and a
plate (so the privacy filter works on every one), and a photo on every tenth.

Then the real web process (`python -m web`) on a free loopback port, and REQUESTS GETs one
after the other, cycling through four queries that each answer 1,000 requests (the cap): the
default (last 90 days), status=open, three service codes, and a 60-day start/end window;
half in JSON, half in XML. The server's time is its `Server-Timing: app;dur=` header (from the
request reaching Sanic to the answer leaving it: query, publishing, rendering); the client's
time is the whole round trip for information.

Last stdout line: {"bench": "open311", "tickets", "results", "sqlite": {...}, "postgresql": {...},
"target_p95_ms": 300, "ok", "loadavg"}. Target: server p95 < 300 ms on both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.db import make_engine, normalise_url, session_scope  # noqa: E402
from core.models import Building, Category, CategoryKind, Grid, Ticket, TicketStatus  # noqa: E402
from core.registry import demo  # noqa: E402

TARGET_P95_MS = 300.0
TIMING = re.compile(r"app;dur=([\d.]+)")
STATES = [TicketStatus.accepted] * 4 + [TicketStatus.claimed, TicketStatus.resolved, TicketStatus.closed,
                                        TicketStatus.closed, TicketStatus.new, TicketStatus.rejected]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, tickets: int, now: datetime) -> float:
    """Migrate, load the demo, write `tickets` tickets; seconds taken."""
    started = time.monotonic()
    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    with session_scope(factory) as s:
        codes = [c.code for c in s.scalars(select(Category).where(Category.kind != CategoryKind.emergency))]
        buildings = [(b.id, b.grid_id) for b in s.scalars(select(Building))]
        grids = {g.id: g.community_id for g in s.scalars(select(Grid))}
    rng = random.Random(311)
    batch: list[dict[str, object]] = []
    with engine.begin() as conn:
        for i in range(tickets):
            created = now - timedelta(seconds=rng.uniform(0, 360 * 86400))
            where = rng.random()
            building_id, grid_id = rng.choice(buildings)
            if where > 0.9:  # a grid without a building
                building_id = None
            elif where > 0.85:  # the triage queue
                building_id, grid_id = None, None
            year = created.year
            batch.append({
                "number": f"{year}-{i + 1:06d}", "year": year, "seq": i + 1, "category_code": rng.choice(codes),
                "urgent": False, "community_id": grids[grid_id] if grid_id else 1, "grid_id": grid_id,
                "building_id": building_id,
                "description": f"第{i}号问题：京A{10000 + i % 90000}又停在消防通道，车主电话1391234{i % 10000:04d}",
                "photo_file_ids": [f"AgACAgBENCH{i}"] if i % 10 == 0 else [], "anonymous": True,
                "status": rng.choice(STATES), "created_at": created, "updated_at": created + timedelta(hours=2),
                "resolve_due_at": created + timedelta(days=7),
            })
            if len(batch) == 5000:
                conn.execute(insert(Ticket), batch)
                batch = []
        if batch:
            conn.execute(insert(Ticket), batch)
    engine.dispose()
    return time.monotonic() - started


def measure(url: str, requests: int, now: datetime) -> dict[str, object]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "WEB_PORT": str(port), "WEB_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), "OPEN311_GET_NEEDS_KEY": "false"}
    server = subprocess.Popen([sys.executable, "-m", "web"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/open311/v2"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the web process did not start")
            time.sleep(0.2)
        window_end = (now - timedelta(days=100)).isoformat()
        window_start = (now - timedelta(days=160)).isoformat()
        queries = [{}, {"status": "open"}, {"service_code": "parking,sanitation,noise,pets,other,facilities"},
                   {"start_date": window_start, "end_date": window_end}]
        server_ms: list[float] = []
        client_ms: list[float] = []
        sizes: list[int] = []
        with httpx.Client(timeout=60) as client:
            for i in range(requests + 4):  # the first four warm up (one of each query)
                fmt = "json" if i % 2 == 0 else "xml"
                started = time.perf_counter()
                answer = client.get(f"{base}/requests.{fmt}", params=queries[i % len(queries)])
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise SystemExit(f"GET requests.{fmt} {queries[i % len(queries)]}: {answer.status_code} {answer.text[:200]}")
                count = len(answer.json()) if fmt == "json" else answer.content.count(b"<request>")
                if count != 1000:
                    raise SystemExit(f"GET requests.{fmt} {queries[i % len(queries)]} answered {count}, not 1000")
                match = TIMING.search(answer.headers.get("server-timing", ""))
                if i >= 4 and match:
                    server_ms.append(float(match.group(1)))
                    client_ms.append(elapsed)
                    sizes.append(len(answer.content))
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)

    return {"requests": len(server_ms), "server_ms": {"p50": pct(server_ms, 0.5), "p95": pct(server_ms, 0.95),
                                                       "max": round(max(server_ms), 1)},
            "client_ms": {"p50": pct(client_ms, 0.5), "p95": pct(client_ms, 0.95)},
            "bytes_mean": int(statistics.mean(sizes))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    result: dict[str, object] = {"bench": "open311", "tickets": args.tickets, "results": 1000,
                                 "target_p95_ms": TARGET_P95_MS}
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-open311-") as tmp:
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
                seconds = seed(url, args.tickets, now)
                print(f"{kind}: {args.tickets} tickets written in {seconds:.0f} s", flush=True)
                figures = measure(url, args.requests, now)
                print(f"{kind}: {json.dumps(figures)}", flush=True)
                result[kind] = figures
                ok = ok and figures["server_ms"]["p95"] < TARGET_P95_MS  # type: ignore[index]
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
