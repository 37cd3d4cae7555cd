"""`make bench-broadcast [N=3000]`: one notice to N residents through a fake Telegram that enforces
the limits, with the sender killed (SIGKILL) once in the middle and restarted.

Three processes:
- the fake Telegram Bot API (`--serve`): scripts/paced_telegram.py's, which enforces Telegram's
  limits (30 requests in any 1.0 s, 1 s between two to one chat: else 429, counted as `limit_429`),
  gives 1% of the recipients a 429 on their first notice and blocks 1% (403), and journals every
  answer. The progress message ("已发送 n/N") is not counted.
- the sender (`--send`): the bot's real BroadcastSender (bot/broadcast_sender.py) with
  python-telegram-bot's Bot and its LastByteRequest (an HTTPXRequest) pointed at the fake.
- this script: sets up a SQLite database (demo community, N residents, the branch secretary's
  notice), starts the sender, queues the notice once the sender is up, SIGKILLs it when the fake has
  delivered half the notices plus a seeded random 0-100 ms (paced_telegram.Sender.kill_when), starts
  a new sender, and waits for it to finish.

Figures: seconds from the notice being queued (the secretary's 发送, while the first sender is up
and idle, as the bot's always is) to the second sender's exit, its cold start after the kill
included; ideal_seconds = N / 30;
duplicates = recipients the fake delivered the notice to more than once; lost = recipients
neither delivered nor blocked. Last stdout line JSON {"recipients", "seconds",
"ideal_seconds", "ratio", "duplicates", "lost", ...}.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.paced_telegram import TOKEN, Journal, JournalTail, Sender, serve, start_fake, stop  # noqa: E402

SECRETARY = 700000001
BASE_CHAT = 820_000_000


def counted(method: str, params: dict[str, str]) -> str | None:
    """The notices (not the progress message) are what the fake counts."""
    return "notice" if method == "sendmessage" and not params.get("text", "").startswith("已发送") else None


# -- the sender ------------------------------------------------------------------------------

def send(url: str, port: int) -> None:
    from bot.broadcast_sender import BroadcastSender, LastByteRequest, sender_bot
    from core.db import make_engine, make_session_factory

    trace = os.environ.get("BENCH_TRACE")
    if trace:  # debugging: when each 'sending' commit returned
        import core.broadcasts.service as cb
        fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        original = cb.mark_sending

        def traced(session, delivery_id):  # type: ignore[no-untyped-def]
            taken = original(session, delivery_id)
            session.commit()
            os.write(fd, f"{delivery_id} {time.monotonic():.4f}\n".encode())
            return taken
        cb.mark_sending = traced  # type: ignore[assignment]

    async def run() -> None:
        request = LastByteRequest(connection_pool_size=16, read_timeout=20, pool_timeout=20)
        bot = sender_bot(TOKEN, request, base_url=f"http://127.0.0.1:{port}/bot")
        await bot.initialize()
        sender = BroadcastSender(bot, make_session_factory(make_engine(url)))
        ready = False
        while await sender.run_once() == 0:
            if not ready:  # up and idle, as the bot's sender is when a secretary presses 发送
                print("ready", flush=True)
                ready = True
            await asyncio.sleep(0.2)
        await bot.shutdown()
        print(json.dumps(sender.stats.__dict__), flush=True)

    asyncio.run(run())


# -- the bench ---------------------------------------------------------------------------------

def setup(url: str, n: int) -> int:
    """The demo community, N residents and the secretary's notice as a draft; its id."""
    from sqlalchemy import select

    from core.broadcasts import service as broadcasts
    from core.db import make_engine, session_scope
    from core.models import Branch, BroadcastAudience, Building, Person
    from core.registry import demo

    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        building = s.scalars(select(Building).where(Building.grid_id == branch.grid_id)).first()
        assert building is not None
        s.add_all([Person(telegram_id=BASE_CHAT + i, display_name=f"居民{i:05d}", building_id=building.id)
                   for i in range(n)])
    with session_scope(factory) as s:
        secretary = s.scalars(select(Person).where(Person.telegram_id == SECRETARY)).one()
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        b = broadcasts.create(s, secretary, audience=BroadcastAudience.residents, branch_id=branch.id,
                              text="本周六上午9点至12点停水，请提前储水。", progress_chat_id=SECRETARY)
        broadcast_id = b.id
    engine.dispose()
    return broadcast_id


def queue(url: str, broadcast_id: int) -> int:
    """The secretary presses 发送: the deliveries are written; the recipient count."""
    from sqlalchemy import select

    from core.broadcasts import service as broadcasts
    from core.db import make_engine, make_session_factory, session_scope
    from core.models import Person

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        secretary = s.scalars(select(Person).where(Person.telegram_id == SECRETARY)).one()
        recipients = broadcasts.queue(s, broadcast_id, secretary).recipients
    engine.dispose()
    return recipients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", "-n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction delivered when the sender is killed")
    parser.add_argument("--keep", action="store_true", help="keep the database and the fake's journal")
    parser.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "JOURNAL"), help=argparse.SUPPRESS)
    parser.add_argument("--send", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.seed, counted)
        return 0
    if args.send:
        send(args.send[0], int(args.send[1]))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="gridbot-bench-broadcast-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    t0 = time.monotonic()
    broadcast_id = setup(url, args.recipients)
    print(f"setup {time.monotonic() - t0:.1f}s", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    server, port, journal_path = start_fake([*me, "--seed", str(args.seed)], env, tmp)
    try:
        # The bot's sender runs all the time: the clock starts when the secretary presses 发送 to a
        # sender that is up. Its restart after the kill is on the clock.
        first = Sender([*me, "--send", url, port], env)
        started = time.monotonic()
        expected_n = queue(url, broadcast_id)
        print(f"sender up in {first.cold_start:.1f}s; {expected_n} recipients queued in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        tail = JournalTail(journal_path)
        killed = first.kill_when(tail, int(args.kill_at * args.recipients), args.seed)
        print(f"SIGKILL at {killed:.4f}")
        killed_at = killed - started
        delivered_at_kill = tail()["D"]
        out = Sender([*me, "--send", url, port], env, ready=False).finish(timeout=args.recipients / 10 + 120)
        seconds = time.monotonic() - started
    finally:
        stop(server)

    journal = Journal.read(journal_path)
    delivered = journal.delivered.get("notice", {})
    blocked, counts = journal.blocked, journal.counts
    from sqlalchemy import func, select

    from core.db import make_engine, make_session_factory, read_scope
    from core.models import BroadcastDelivery
    with read_scope(make_session_factory(make_engine(url))) as s:
        states = {str(getattr(st, "value", st)): n for st, n in s.execute(
            select(BroadcastDelivery.state, func.count()).group_by(BroadcastDelivery.state))}
        expected = set(s.scalars(select(BroadcastDelivery.chat_id)))
        if os.environ.get("BENCH_TRACE"):
            for d in s.scalars(select(BroadcastDelivery).where(BroadcastDelivery.state == "unconfirmed")):
                print(f"  unconfirmed: delivery {d.id} chat {d.chat_id}")
    if os.environ.get("BENCH_TRACE"):
        for line in journal_path.read_text().splitlines():
            if line.startswith(("L", "R")):
                kind, chat, at, *_ = line.split(" ")
                print(f"  {kind} chat {chat} at {float(at) - started:.3f}s")
    print(journal.gaps(started))
    print(f"killed after {killed_at:.1f}s with {delivered_at_kill} delivered; second sender: {out.strip()}")
    print(f"fake Telegram: {counts['D']} delivered, {counts['B']} blocked (403), {counts['R']} random 429, "
          f"{counts['L']} refused for exceeding a limit; rows: {states}")
    ideal = len(expected) / 30
    result = {
        "recipients": len(expected),
        "seconds": round(seconds, 1),
        "ideal_seconds": round(ideal, 1),
        "ratio": round(seconds / ideal, 3),
        "duplicates": sum(1 for n in delivered.values() if n > 1),
        "lost": len(expected - set(delivered) - blocked),
        "blocked": len(blocked & expected),
        "unconfirmed": states.get("unconfirmed", 0),
        "limit_429": counts["L"],
        "sender_start_seconds": round(first.cold_start, 1),
    }
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
