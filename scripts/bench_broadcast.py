"""`make bench-broadcast [N=3000]`: one notice to N residents through a fake Telegram that enforces
the limits, with the sender killed (SIGKILL) once in the middle and restarted.

Three processes:
- the fake Telegram Bot API (`--serve`): an HTTP server answering getMe, sendMessage and
  editMessageText like Telegram. It enforces the limits: more than 30 requests in any 1.0 s
  window, or two requests to one chat less than 1 s apart, are answered 429 with
  retry_after=1 (and counted as `limit_429`). Seeded by chat id, 1% of the recipients get a
  429 (retry_after=1, that chat refused for a second) on their first message and 1% are
  blocked (403 on every message). It appends every answer to a journal file.
- the sender (`--send`): the bot's real BroadcastSender (bot/broadcast_sender.py) with
  python-telegram-bot's Bot and its LastByteRequest (an HTTPXRequest) pointed at the fake.
- this script: sets up a SQLite database (demo community, N residents, the branch secretary's
  notice), starts the sender, queues the notice once the sender is up, SIGKILLs it when the fake has delivered half the
  notices plus a seeded random 0-100 ms (so the kill lands anywhere in a send cycle, not just
  after a delivery), starts a new sender,
  and waits for it to finish.

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
import collections
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from select import select as wait_readable
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRETARY = 700000001
BASE_CHAT = 820_000_000
TOKEN = "123456:BENCH"
RATE, WINDOW, PER_CHAT = 30, 1.0, 1.0
READY_SECONDS = 120


# -- the fake Telegram ---------------------------------------------------------------------

class FakeState:
    def __init__(self, journal: Path, seed: int) -> None:
        self.lock = threading.Lock()
        self.window: collections.deque[float] = collections.deque()
        self.chat_next: dict[int, float] = {}  # chat -> monotonic time it may be sent to again
        self.first_seen: set[int] = set()
        self.seed = seed
        self.message_id = 0
        self.journal = journal.open("a", buffering=1)

    def fate(self, chat: int) -> str:
        u = random.Random(self.seed * 1_000_003 + chat).random()
        return "429" if u < 0.01 else "403" if u < 0.02 else "ok"

    def answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        chat = int(params["chat_id"]) if "chat_id" in params else None
        with self.lock:
            if method == "getme":
                return 200, {"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "Bench",
                                                     "username": "bench_bot"}}
            while self.window and self.window[0] <= now - WINDOW:
                self.window.popleft()
            if len(self.window) >= RATE or (chat is not None and now < self.chat_next.get(chat, 0.0)):
                self.journal.write(f"L {chat} {now:.4f}\n")
                return 429, _too_many(1)
            self.window.append(now)
            assert chat is not None
            self.chat_next[chat] = now + PER_CHAT
            if method == "sendmessage" and not params.get("text", "").startswith("已发送"):
                fate = self.fate(chat)
                if fate == "403":
                    self.journal.write(f"B {chat} {now:.4f}\n")
                    return 403, {"ok": False, "error_code": 403,
                                 "description": "Forbidden: bot was blocked by the user"}
                if fate == "429" and chat not in self.first_seen:
                    self.first_seen.add(chat)
                    self.chat_next[chat] = now + 1.0
                    self.journal.write(f"R {chat} {now:.4f}\n")
                    return 429, _too_many(1)
                self.journal.write(f"D {chat} {now:.4f}\n")
            self.message_id += 1
            return 200, {"ok": True, "result": {
                "message_id": self.message_id, "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "User"},
                "text": params.get("text", "")}}


def _too_many(seconds: int) -> dict[str, Any]:
    return {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {seconds}",
            "parameters": {"retry_after": seconds}}


def serve(port_file: Path, journal: Path, seed: int) -> None:
    state = FakeState(journal, seed)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if len(raw) < length:  # the sender died mid-request: like any HTTP server, do nothing
                self.close_connection = True
                return
            body = raw.decode()
            if "json" in (self.headers.get("Content-Type") or ""):
                params = {k: str(v) for k, v in json.loads(body or "{}").items()}
            else:
                params = {k: v[0] for k, v in parse_qs(body).items()}
            method = self.path.rstrip("/").rsplit("/", 1)[-1].lower()
            status, answer = state.answer(method, params)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


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


class JournalTail:
    """Counts the fake's answers by kind, reading only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self) -> collections.Counter[str]:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.offset += end
            for line in data[:end].splitlines():
                self.counts[line[:1].decode()] += 1
        return self.counts


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
        serve(Path(args.serve[0]), Path(args.serve[1]), args.seed)
        return 0
    if args.send:
        send(args.send[0], int(args.send[1]))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="gridbot-bench-broadcast-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    t0 = time.monotonic()
    broadcast_id = setup(url, args.recipients)
    print(f"setup {time.monotonic() - t0:.1f}s", flush=True)
    port_file, journal = tmp / "port", tmp / "journal"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen([*me, "--seed", str(args.seed), "--serve", str(port_file), str(journal)], env=env)
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        port = port_file.read_text()
        # The bot's sender runs all the time: the clock starts when the secretary presses 发送 to a
        # sender that is up. Its restart after the kill is on the clock.
        launched = time.monotonic()
        first = subprocess.Popen([*me, "--send", url, port], env=env, stdout=subprocess.PIPE, text=True)
        assert first.stdout is not None
        readable, _, _ = wait_readable([first.stdout], [], [], READY_SECONDS)
        if not readable or first.stdout.readline().strip() != "ready":
            first.kill()
            raise SystemExit(f"bench-broadcast: the sender was not up within {READY_SECONDS} s")
        cold_start = time.monotonic() - launched
        started = time.monotonic()
        expected_n = queue(url, broadcast_id)
        print(f"sender up in {cold_start:.1f}s; {expected_n} recipients queued in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        kill_at = int(args.kill_at * args.recipients)
        tail = JournalTail(journal)
        while tail()["D"] < kill_at and first.poll() is None:
            time.sleep(0.005)
        # then at a random moment (not just after a delivery was seen): anywhere in a send
        time.sleep(random.Random(args.seed).uniform(0.0, 0.1))
        first.send_signal(signal.SIGKILL)
        print(f"SIGKILL at {time.monotonic():.4f}")
        first.wait()
        killed_at = time.monotonic() - started
        delivered_at_kill = tail()["D"]
        second = subprocess.Popen([*me, "--send", url, port], env=env, stdout=subprocess.PIPE, text=True)
        out, _ = second.communicate(timeout=args.recipients / 10 + 120)
        seconds = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)

    delivered: collections.Counter[int] = collections.Counter()
    blocked: set[int] = set()
    counts: collections.Counter[str] = collections.Counter()
    times: list[float] = []
    for line in journal.read_text().splitlines():
        kind, chat, at = line.split(" ")
        counts[kind] += 1
        times.append(float(at))
        if kind == "D":
            delivered[int(chat)] += 1
        elif kind == "B":
            blocked.add(int(chat))
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
    for line in journal.read_text().splitlines():
        if line.startswith(("L", "R")) and os.environ.get("BENCH_TRACE"):
            kind, chat, at = line.split(" ")
            print(f"  {kind} chat {chat} at {float(at) - started:.3f}s")
    times.sort()
    gaps = sorted((b - a, a) for a, b in zip(times, times[1:], strict=False))[-3:]
    print(f"answers from {times[0] - started:.1f}s to {times[-1] - started:.1f}s after queueing; "
          "longest gaps: " + ", ".join(f"{g:.2f}s at {a - started:.1f}s" for g, a in reversed(gaps)))
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
        "sender_start_seconds": round(cold_start, 1),
    }
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
