"""`make bench-chat`: simulated residents report problems concurrently, end to end.

Starts the real action server and Rasa server (on free ports, a throw-away
SQLite database with the demo community), builds the real python-telegram-bot
Application on the offline Bot API (bot/offline.py), and lets USERS residents,
each bound to a demo building, report a problem and confirm it, with a short
think time between their messages. The latency of a reply is the time from
the update reaching the Application to the bot's answer reaching "Telegram".

Last stdout line: {"users", "messages", "p50_ms", "p95_ms", "tickets_filed", "lost"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPORTS = [
    "{b}号楼消防通道又被私家车堵了",
    "{b}号楼楼道里的灯坏了一个星期了，晚上黑咕隆咚",
    "{b}号楼门口的垃圾桶满了好几天没人收",
    "{b}号楼电梯又坏了，老人上不去楼",
    "{b}号楼楼下有人天天遛狗不牽繩",
    "{b}号楼旁边的下水道堵了，污水漫出来了",
    "{b}号楼楼上装修每天早上七点就开始电钻",
    "{b}号楼楼道里有人飞线给电动车充电",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_environment(work: Path) -> dict[str, str]:
    """Settings for a bench's own stack: free ports, a throw-away SQLite database and Rasa
    tracker under `work`, a throw-away shared secret, Telegram off."""
    rasa_port, action_port = free_port(), free_port()
    return {
        "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "RASA_PORT": str(rasa_port), "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "ACTION_SERVER_PORT": str(action_port),
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook",
        "WEB_PORT": str(free_port()),  # the web process (Open311) that `make run` starts too
        "TELEGRAM_BOT_TOKEN": "", "LOG_LEVEL": "WARNING",
        # A throw-away shared secret for this bench's servers and its in-process bot.
        "GRIDBOT_SECRET": secrets.token_urlsafe(32),
        "RASA_TRACKER_DB": str(work / "rasa-tracker.db"),  # the bench's own conversations
    }


def bind_residents(factory, ids: list[int], rng: random.Random) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Bind each Telegram user id to a demo building drawn by `rng`; id → the building's number."""
    from sqlalchemy import select  # noqa: PLC0415

    from core.db import session_scope  # noqa: PLC0415
    from core.models import Building  # noqa: PLC0415
    from core.people import residents  # noqa: PLC0415

    homes = {}
    with session_scope(factory) as s:
        buildings = [(b.id, b.number) for b in s.scalars(select(Building).order_by(Building.code))]
        for uid in ids:
            bid, number = rng.choice(buildings)
            residents.bind_resident(s, uid, f"居民{uid % 1000}", bid, True)
            homes[uid] = number
    return homes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--ramp", type=float, default=5.0, help="users start within this many seconds")
    parser.add_argument("--think", type=float, default=3.0,
                        help="mean seconds a user takes to read the summary before pressing 确认")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gridbot-bench-"))
    os.environ.update(bench_environment(work))
    action_port = int(os.environ["ACTION_SERVER_PORT"])
    from cli.run import servers  # noqa: PLC0415 - after the environment is set
    from core.config import get_settings  # noqa: PLC0415

    settings = get_settings()
    subprocess.run([sys.executable, "-m", "cli.main", "demo"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    procs = []
    try:
        for child in servers():
            log = (work / f"{child.name}.log").open("wb")
            procs.append(subprocess.Popen(child.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONPATH": str(ROOT)}))
        _wait_ready(settings.rasa_url, action_port, procs, os.environ["GRIDBOT_SECRET"])
        result = asyncio.run(_bench(settings, args.users, args.ramp, args.think, args.seed))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"users start within {args.ramp:g} s, read the summary {args.think:g} s on average")
    print(f"{result['users']} users, {result['messages']} replies: p50 {result['p50_ms']} ms, "
          f"p95 {result['p95_ms']} ms; {result['tickets_filed']} tickets filed, {result['lost']} lost")
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["lost"] == 0 else 1



def stack_ready(rasa_url: str, action_port: int, secret: str) -> bool:
    """Rasa has loaded its model and the action server answers (both behind the secret)."""
    import httpx  # noqa: PLC0415

    from core import secret as shared  # noqa: PLC0415

    try:
        ok = httpx.get(f"http://127.0.0.1:{action_port}/health", timeout=2,
                       headers={shared.SECRET_HEADER: secret}).status_code == 200
        status = httpx.get(f"{rasa_url}/status", timeout=2,
                           headers={"Authorization": f"Bearer {shared.rasa_jwt(secret)}"})
        return ok and status.status_code == 200 and bool(status.json().get("model_file"))
    except httpx.HTTPError:
        return False


def _wait_ready(rasa_url: str, action_port: int, procs: list[subprocess.Popen[bytes]], secret: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("bench-chat: a server exited early; see its log")
        if stack_ready(rasa_url, action_port, secret):
            return
        time.sleep(1)
    raise SystemExit("bench-chat: Rasa was not ready in 300 s")


async def _bench(settings, users: int, ramp: float, think: float, seed: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select  # noqa: PLC0415

    from bot.app import build_application  # noqa: PLC0415
    from bot.offline import FakeTelegram, UpdateBuilder  # noqa: PLC0415
    from core.db import make_engine, make_session_factory, session_scope  # noqa: PLC0415
    from core.messages import t  # noqa: PLC0415
    from core.models import InboxMessage, InboxState, Ticket  # noqa: PLC0415

    factory = make_session_factory(make_engine(settings.database_url))
    ids = [720_000_000 + i for i in range(users)]
    homes = bind_residents(factory, ids, random.Random(seed))
    fake = FakeTelegram()
    app = build_application(settings.model_copy(update={"telegram_bot_token": "123:BENCH"}), factory,
                            request=fake, background=False)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    updates = UpdateBuilder(app.bot, fake)
    svc = app.bot_data["services"]
    # A running bot has warmed Rasa up at its start (bot/app.py _warm_up; background=False here).
    await svc.rasa.warm_up()
    rasa_ms: list[float] = []
    send = svc.rasa.send

    async def timed_send(*a, **kw):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return await send(*a, **kw)
        finally:
            rasa_ms.append((time.perf_counter() - started) * 1000)

    svc.rasa.send = timed_send
    latencies: list[float] = []
    asked = [0]  # messages and presses sent; each must get a reply
    confirm = t("report.button_confirm")

    # Waiters sleep until "Telegram" receives a request, instead of polling: fifty
    # polling loops would take CPU from the servers being measured.
    sent_event = [asyncio.Event()]
    do_request = fake.do_request

    async def notifying_do_request(*a, **kw):  # type: ignore[no-untyped-def]
        try:
            return await do_request(*a, **kw)
        finally:
            event, sent_event[0] = sent_event[0], asyncio.Event()
            event.set()

    fake.do_request = notifying_do_request  # type: ignore[method-assign]

    async def wait_reply(uid: int, before: int, started: float) -> list[dict[str, object]]:
        deadline = started + 30
        while (left := deadline - time.perf_counter()) > 0:
            event = sent_event[0]
            sent = fake.sent_messages(uid)
            if len(sent) > before:
                latencies.append((time.perf_counter() - started) * 1000)
                return sent[before:]
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10
                break
        return []

    async def resident(uid: int) -> None:
        own = random.Random(f"{seed}:{uid}")  # each user's own: the same run every time
        await asyncio.sleep(own.uniform(0, ramp))
        text = own.choice(REPORTS).format(b=homes[uid])
        before = len(fake.sent_messages(uid))
        started = time.perf_counter()
        asked[0] += 1
        await app.process_update(updates.text(uid, text))
        if not await wait_reply(uid, before, started):
            return
        await asyncio.sleep(own.expovariate(1 / think))
        for sent in reversed(fake.sent_messages(uid)):
            message = fake.message(uid, int(sent["message_id"]))  # type: ignore[arg-type]
            rows = ((message or {}).get("reply_markup") or {}).get("inline_keyboard", [])
            data = next((b["callback_data"] for row in rows for b in row if b.get("text") == confirm), None)
            if data is not None:
                before = len(fake.sent_messages(uid))
                started = time.perf_counter()
                asked[0] += 1
                press = updates.callback_query(uid, data, message)
                app.bot.insert_callback_data(press)  # as polling does
                await app.process_update(press)
                await wait_reply(uid, before, started)
                return

    await asyncio.gather(*(resident(uid) for uid in ids))
    if os.environ.get("BENCH_DEBUG"):
        print("slowest replies ms:", [round(x) for x in sorted(latencies)[-10:]], file=sys.stderr)
    await app.post_shutdown(app) if app.post_shutdown else None
    await app.shutdown()
    with session_scope(factory) as s:
        filed = s.scalar(select(func.count()).select_from(Ticket)) or 0
        waiting = s.scalar(select(func.count()).select_from(InboxMessage)
                           .where(InboxMessage.state != InboxState.done)) or 0
    if rasa_ms:
        print(f"Rasa round trip (NLU, dialogue, actions): p50 {statistics.median(rasa_ms):.1f} ms, "
              f"p95 {percentile(rasa_ms, 0.95):.1f} ms")
    return {
        "users": users,
        "messages": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "tickets_filed": filed,
        "lost": (asked[0] - len(latencies)) + waiting,  # unanswered, or still waiting in the inbox
    }


if __name__ == "__main__":
    raise SystemExit(main())
