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
  community loaded) with PEOPLE people (party members, volunteers, 双报到 members: for delivery they
  are chat ids; one in ten said /notify off), starts the sender, declares the emergency once it is
  up (`declare`: one "mobilise.call" per person through core.messaging.outbox), SIGKILLs the sender
  when the fake has delivered half the calls plus a seeded random 0-100 ms, starts a new one and
  waits for it to finish.

Figures, per person from the fake's journal and the outbox:
- seconds: from the declaration to the second sender seeing every call settled (its cold start
  after the kill, the dead sender's leases running out and any 【重发】 included);
  ideal_seconds = PEOPLE / 30; ratio = seconds / ideal_seconds (target <= 1.10);
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.paced_telegram import TOKEN, Journal, JournalTail, Sender, serve, start_fake, stop  # noqa: E402

BASE_CHAT = 830_000_000
INCIDENT = 1
RATE = 30  # TELEGRAM_RATE's default: Telegram's overall limit
CALL_TEXT = "【紧急召集】和平里3号楼火情，请党员、志愿者、双报到党员立即到小区东门集合，听从现场指挥。"
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

def setup(url: str, n: int) -> list[tuple[int, int]]:
    """The demo community and N people to call, one in ten with /notify off: (person id, chat id)."""
    from sqlalchemy import select

    from core.db import make_engine, session_scope
    from core.models import Branch, Building, Person
    from core.registry import demo

    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        building = s.scalars(select(Building).where(Building.grid_id == branch.grid_id)).first()
        assert building is not None
        s.add_all([Person(telegram_id=BASE_CHAT + i, display_name=f"党员{i:05d}", building_id=building.id,
                          notify_off=i % 10 == 0) for i in range(n)])
    with session_scope(factory) as s:
        people = [(int(pid), int(chat)) for pid, chat in s.execute(
            select(Person.id, Person.telegram_id).where(Person.telegram_id >= BASE_CHAT,
                                                        Person.telegram_id < BASE_CHAT + n))]
    engine.dispose()
    return people


def enqueue_calls(session: Any, incident: int, people: list[tuple[int, int]]) -> int:
    """One call per person, queued in the caller's transaction; how many. (core.mobilise's
    declaration queues them when it is merged; this stands in for it.)"""
    from core.messaging import outbox

    calls = [{"dedupe_key": f"mobilise:{incident}:{person}", "chat_id": chat,
              "payload": {"text": CALL_TEXT, "buttons": [[{"text": "收到", "callback_data": ["mobilise", incident]}]]}}
             for person, chat in people]
    return outbox.enqueue_many(session, calls, kind=outbox.CALLOUT)


def declare(url: str, people: list[tuple[int, int]]) -> int:
    """The commander declares the emergency: every call queued at once."""
    from core.db import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        queued = enqueue_calls(s, INCIDENT, people)
    engine.dispose()
    return queued


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


def count(people: list[tuple[int, int]], journal: Journal, calls: dict[int, str]) -> dict[str, int]:
    """Duplicates and lost, per person (see the module docstring)."""
    plain, copies = journal.delivered.get("call", {}), journal.delivered.get("resend", {})
    duplicates = lost = 0
    for _, chat in people:
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
    people = setup(url, args.people)
    print(f"setup {time.monotonic() - t0:.1f}s: {len(people)} people", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    server, port, journal_path = start_fake([*me, "--seed", str(args.seed), "--latency-ms", str(args.latency_ms)],
                                            env, work)
    try:
        # The bot's dispatcher runs all the time: the clock starts when the commander declares the
        # emergency to a bot that is up. The restart after the kill is on the clock.
        first = Sender([*me, "--send", url, port], env)
        started = time.monotonic()
        queued = declare(url, people)
        print(f"sender up in {first.cold_start:.1f}s; {queued} calls queued in {time.monotonic() - started:.1f}s",
              flush=True)
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
        "notify_off": sum(1 for i in range(len(people)) if i % 10 == 0),
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
