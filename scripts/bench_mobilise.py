"""`make bench-mobilise [PEOPLE=5000]`: an emergency call-out to PEOPLE people at Telegram's pace,
the sender killed (SIGKILL) once in the middle and restarted.

Three processes:
- the fake Telegram Bot API (`--serve`): scripts/paced_telegram.py's, which enforces Telegram's
  limits (30 requests in any 1.0 s, 1 s between two to one chat: else 429, counted as `limit_429`),
  gives 1% of the people a 429 on their first message and blocks 1% (403), and journals every
  call it carries out, a 【重发】 copy apart from a plain call. --latency-ms: each request takes that
  long to reach it (Telegram is not on this machine).
- the sender (`--send`): the bot's real outbox dispatcher (bot/dispatcher.py's OutboxDispatcher,
  its `run_forever` loop as the bot runs it) with the bot's rate budget (bot/ratelimit.py, 30 a
  second as TELEGRAM_RATE says; on PostgreSQL shared through the database as in the bot) and
  python-telegram-bot's Bot on an HTTPXRequest pointed at the fake. It exits once no call is left
  to send (none pending or being sent), printing when.
- this script: a throw-away SQLite database (or --database-url, an empty one: migrated, the demo
  community loaded) with PEOPLE made-up members of 和平里第一网格党支部 (one in ten said /notify off),
  starts the sender, and once it is up has the demo's commander declare a fire over that grid
  (core.mobilise.declare: the incident and one "mobilise.call" per person called, the grid's demo
  people too), SIGKILLs the sender when the fake has delivered half the calls plus a seeded random
  0-100 ms, starts a new one and waits for it to finish.

Figures, per person from the fake's journal and the outbox:
- people: everyone called; seconds: from the declaration (its transaction included) to the
  second sender seeing every call settled (its cold start
  after the kill, the dead sender's leases running out and any 【重发】 included);
  ideal_seconds = people / 30; ratio = seconds / ideal_seconds (target <= 1.10);
- duplicates: people who received the call more than once, other than one 【重发】 copy after a call
  whose outcome was unknown (`unconfirmed`): two plain calls, two copies, or a copy after a call
  that was confirmed (target 0);
- lost: people who received neither the call nor its copy and are not blocked (target 0);
- resent: 【重发】 copies delivered (and resends_queued: copies the outbox queued).
Last stdout line JSON {"people", "seconds", "ideal_seconds", "ratio", "duplicates", "lost",
"resent", ...}; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.paced_telegram import TOKEN, Journal, JournalTail, Sender, serve, start_fake, stop  # noqa: E402

BASE_CHAT = 830_000_000
INCIDENT = 1
RATE = 30  # TELEGRAM_RATE's default: Telegram's overall limit
ORDER = "3号楼火情，请立即到小区东门集合，听从现场指挥"
TARGET_RATIO = 1.10


def counted(method: str, params: dict[str, str]) -> str | None:
    """Calls are what the fake counts: a 【重发】 copy apart from a plain call."""
    from core.messages import t

    if method != "sendmessage":
        return None
    return "resend" if params.get("text", "").startswith(t("callout.resend_mark")) else "call"


# -- the sender ------------------------------------------------------------------------------

def send(url: str, port: int) -> None:
    from sqlalchemy import func, select
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from bot.dispatcher import OutboxDispatcher
    from bot.ratelimit import RateLimiter, shared_budget
    from core.db import make_engine, make_session_factory, read_scope
    from core.messaging import outbox
    from core.models import OutboxMessage

    engine = make_engine(url)
    factory = make_session_factory(engine)

    def settled() -> bool:
        """Calls were queued and none is left to send."""
        with read_scope(factory) as s:
            states = dict(s.execute(select(OutboxMessage.send_state, func.count())
                                    .where(OutboxMessage.kind == outbox.CALLOUT)
                                    .group_by(OutboxMessage.send_state)).tuples().all())
        return bool(states) and not any(states.get(state) for state in outbox.OPEN)

    async def run() -> None:
        bot = Bot(TOKEN, request=HTTPXRequest(connection_pool_size=8), base_url=f"http://127.0.0.1:{port}/bot")
        await bot.initialize()
        # as bot/app.py's Services builds it: one budget, shared with other bot processes on PostgreSQL
        limiter = RateLimiter(rate=RATE, shared=shared_budget(engine, RATE))
        dispatcher = OutboxDispatcher(bot, factory, limiter=limiter)
        stop = asyncio.Event()
        sending = asyncio.create_task(dispatcher.run_forever(stop))
        print("ready", flush=True)
        while not await asyncio.to_thread(settled):
            await asyncio.sleep(0.1)
        done_at = time.monotonic()
        stop.set()
        await sending
        await bot.shutdown()
        print(json.dumps({"done_at": done_at}), flush=True)

    asyncio.run(run())


# -- the bench ---------------------------------------------------------------------------------

def setup(url: str, n: int) -> None:
    """The demo community and N made-up members of 和平里第一网格党支部, one in ten with /notify off."""
    from sqlalchemy import insert, select

    from core.db import make_engine, session_scope
    from core.models import Branch, BranchMember, Person
    from core.registry import demo

    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        s.execute(insert(Person), [{"display_name": f"党员{i:05d}", "telegram_id": BASE_CHAT + i,
                                    "notify_off": i % 10 == 0} for i in range(n)])
        ids = s.scalars(select(Person.id).where(Person.telegram_id >= BASE_CHAT)).all()
        s.execute(insert(BranchMember), [{"branch_id": branch.id, "person_id": pid, "joined_by": "registry"}
                                         for pid in ids])
    engine.dispose()


def declare(url: str) -> list[tuple[int, int, bool]]:
    """The demo's commander declares a fire over 和平里第一网格 (core.mobilise.declare: the incident
    and one "mobilise.call" per person, in one transaction): who is called, (person, chat, notify_off)."""
    from sqlalchemy import select

    from core.db import make_engine, make_session_factory, read_scope, session_scope
    from core.mobilise import declare
    from core.models import AreaLevel, Grid, IncidentCall, IncidentKind, Person

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        commander = s.scalars(select(Person).where(Person.code == "P-0069")).one()
        grid = s.scalars(select(Grid.id).where(Grid.code == "G-HPL-01")).one()
        incident, _ = declare.declare(s, commander, IncidentKind.fire, AreaLevel.grids, grid_ids=[grid],
                                      order=ORDER, now=datetime.now(timezone.utc), tz=ZoneInfo("Asia/Shanghai"))
        incident_id = incident.id
    with read_scope(make_session_factory(engine)) as s:
        called = [(int(pid), int(chat), bool(off)) for pid, chat, off in s.execute(
            select(Person.id, Person.telegram_id, Person.notify_off).join(IncidentCall, IncidentCall.person_id == Person.id)
            .where(IncidentCall.incident_id == incident_id))]
    engine.dispose()
    return called


def outcome(url: str) -> dict[str, Any]:
    """The outbox at the end: the calls' states by chat, the copies' states, counts by state."""
    from sqlalchemy import select

    from core.db import make_engine, make_session_factory, read_scope
    from core.messaging import outbox
    from core.models import OutboxMessage

    engine = make_engine(url)
    with read_scope(make_session_factory(engine)) as s:
        rows = s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.chat_id, OutboxMessage.send_state)
                         .where(OutboxMessage.kind == outbox.CALLOUT)).all()
    engine.dispose()
    calls = {int(chat): state.value for key, chat, state in rows if not key.startswith(outbox.RESEND_PREFIX)}
    copies = [state.value for key, _, state in rows if key.startswith(outbox.RESEND_PREFIX)]
    return {"calls": calls, "copies": copies}


def count(people: list[tuple[int, int, bool]], journal: Journal, calls: dict[int, str]) -> dict[str, int]:
    """Duplicates and lost, per person (see the module docstring)."""
    plain, copies = journal.delivered.get("call", {}), journal.delivered.get("resend", {})
    duplicates = lost = 0
    for _, chat, _ in people:
        p, r = plain.get(chat, 0), copies.get(chat, 0)
        if p > 1 or r > 1 or (p and r and calls.get(chat) != "unconfirmed"):
            duplicates += 1
        if not p and not r and chat not in journal.blocked:
            lost += 1
    return {"duplicates": duplicates, "lost": lost}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", "-n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction delivered when the sender is killed")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="how long a request takes to reach the fake")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, journal)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "JOURNAL"), help=argparse.SUPPRESS)
    parser.add_argument("--send", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.seed, counted, args.latency_ms / 1000)
        return 0
    if args.send:
        send(args.send[0], int(args.send[1]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="gridbot-bench-mobilise-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    t0 = time.monotonic()
    setup(url, args.people)
    print(f"setup {time.monotonic() - t0:.1f}s", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    server, port, journal_path = start_fake([*me, "--seed", str(args.seed), "--latency-ms", str(args.latency_ms)],
                                            env, work)
    try:
        # The bot's dispatcher runs all the time: the clock starts when the commander declares the
        # emergency to a bot that is up. The restart after the kill is on the clock.
        first = Sender([*me, "--send", url, port], env)
        started = time.monotonic()
        people = declare(url)
        print(f"sender up in {first.cold_start:.1f}s; declared: {len(people)} people called in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        tail = JournalTail(journal_path)
        killed_at = first.kill_when(tail, int(args.kill_at * len(people)), args.seed) - started
        delivered_at_kill = tail()["D"]
        last = Sender([*me, "--send", url, port], env, ready=False).finish(timeout=len(people) / 10 + 300)
        seconds = json.loads(last)["done_at"] - started
    finally:
        stop(server)

    journal = Journal.read(journal_path)
    end = outcome(url)
    calls, copies = end["calls"], end["copies"]
    counts = journal.counts
    print(journal.gaps(started))
    print(f"killed after {killed_at:.1f}s with {delivered_at_kill} delivered; requests refused for exceeding a "
          f"limit at {', '.join(f'{at - started:.1f}s' for at in journal.refused) or 'no time'}")
    states: dict[str, int] = {}
    for state in calls.values():
        states[state] = states.get(state, 0) + 1
    print(f"fake Telegram: {counts['D']} delivered ({sum(journal.delivered.get('resend', {}).values())} of them "
          f"【重发】), {counts['B']} blocked (403), {counts['R']} random 429, {counts['L']} refused for exceeding "
          f"a limit; calls: {states}; copies: {copies}")
    ideal = len(people) / RATE
    result = {
        "people": len(people),
        "seconds": round(seconds, 1),
        "ideal_seconds": round(ideal, 1),
        "ratio": round(seconds / ideal, 3),
        **count(people, journal, calls),
        "resent": sum(journal.delivered.get("resend", {}).values()),
        "resends_queued": len(copies),
        "unconfirmed": states.get("unconfirmed", 0),
        "blocked": len(journal.blocked),
        "notify_off": sum(1 for _, _, off in people if off),
        "limit_429": counts["L"],
        "killed_at": round(killed_at, 1),
        "sender_start_seconds": round(first.cold_start, 1),
        "database": url.split(":", 1)[0],
        "latency_ms": args.latency_ms,
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    met = result["duplicates"] == 0 and result["lost"] == 0 and result["ratio"] <= TARGET_RATIO
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
