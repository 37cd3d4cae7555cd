"""`make bench-chaos`: residents report problems while the bot, Rasa and the action server are killed.

The whole stack as `make run` starts it: the `cli.run` supervisor with its children (the
bot, the Rasa server, the action server, the web process) on a throw-away SQLite database with the demo
community. Telegram is this process: an HTTP server playing the Bot API (bot/offline.py's
`FakeTelegram` behind `http.server`, with long polling), which the bot reaches through
TELEGRAM_API_URL. RESIDENTS residents, each bound to a demo building, send REPORTS reports
each at seeded random moments over DURATION seconds; each reads the bot's answers as a person
would: presses 确认提交 on the summary after a think time, picks the first button offered when
asked to choose, names their building when asked where, says a few words when asked what
happened, and waits (up to PATIENCE seconds) while the bot says it is busy.

Meanwhile a killer SIGKILLs the supervisor's children in turn (each KILLS times, in a seeded
order, at seeded random moments), each time once the previous victim is back: the bot polling
again, Rasa with its model loaded and the action server answering. The supervisor restarts
them, as it does under `make run`. Report limits are raised for the bench (REPORT_LIMIT_PER_HOUR).

It ends when every resident has had an answer (or the time limit); then the queues are given
a minute to drain. Last stdout line:
{"reports", "tickets_filed", "lost", "duplicate_messages", "unanswered", "kills", "residents",
"confirmed", "acknowledged", "unacknowledged_tickets", "inputs", "recovery_s", "seconds", ...}
- lost: reports whose 确认提交 the resident pressed and saw acknowledged (工单号 …) without a
  ticket of that number filed by them;
- duplicate_messages: messages the fake Telegram received more often than the outbox queued
  them (per chat and text: a row delivered twice);
- unanswered: resident inputs (a text or a press) whose replies, at the end, are none, or
  only holding messages and apologies (Rasa busy, an answer that failed, a stale button).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_chat import REPORTS, bench_environment, bind_residents, free_port, stack_ready  # noqa: E402

VICTIMS = ("bot", "rasa", "actions")
FIRST_RESIDENT = 760_000_000
MAX_STEPS = 6  # answers to the bot's questions within one report, at most
PLAIN_TEXT = ("text", "caption")  # parameters python-telegram-bot sends as they are (others: JSON)


# -- Telegram over HTTP ------------------------------------------------------------------------

class _Form:
    """What FakeTelegram reads of python-telegram-bot's RequestData, from a request body."""

    def __init__(self, parameters: dict[str, Any], files: dict[str, tuple[str, bytes, str]]) -> None:
        self.parameters = parameters
        self.multipart_data = files
        self.contains_files = bool(files)


def _value(name: str, raw: str) -> Any:
    if name in PLAIN_TEXT:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def decode_body(content_type: str, body: bytes) -> _Form:
    """A Bot API request body (form-urlencoded or multipart) as FakeTelegram's input."""
    params: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    if content_type.startswith("multipart/"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            content = part.get_payload(decode=True) or b""
            if filename:
                files[str(name)] = (filename, content, part.get_content_type())
            else:
                params[str(name)] = _value(str(name), content.decode())
    elif content_type.startswith("application/json"):
        params = json.loads(body or b"{}")
    else:
        params = {k: _value(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)}
    return _Form(params, files)


def chaos_telegram(loop: asyncio.AbstractEventLoop):  # type: ignore[no-untyped-def]
    """A FakeTelegram with long polling that tells each resident when something reached their chat."""
    from bot.offline import FakeTelegram  # noqa: PLC0415

    class ChaosTelegram(FakeTelegram):
        def __init__(self) -> None:
            super().__init__(poll_delay=0.0)
            self.arrived = asyncio.Event()
            self.chat_events: dict[int, asyncio.Event] = {}
            self.last_poll = 0.0  # time.monotonic() of the latest getUpdates

        def push_update(self, update: Any) -> None:
            super().push_update(update)
            self.arrived.set()

        async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
            self.last_poll = time.monotonic()
            deadline = loop.time() + min(float(params.get("timeout") or 0), 10.0)
            while True:
                found = await super()._get_updates({**params, "timeout": 0})
                if found or loop.time() >= deadline:
                    return found
                self.arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), deadline - loop.time())

        async def do_request(self, url: str, method: str, request_data: Any = None, *a: Any, **kw: Any):  # type: ignore[no-untyped-def]
            try:
                return await super().do_request(url, method, request_data, *a, **kw)
            finally:
                chat = (getattr(request_data, "parameters", None) or {}).get("chat_id")
                query = (getattr(request_data, "parameters", None) or {}).get("callback_query_id")
                if query is not None:  # UpdateBuilder's query ids: the user id, then six digits
                    chat = int(str(query)[:-6])
                with contextlib.suppress(TypeError, ValueError):
                    event = self.chat_events.get(int(chat)) if chat is not None else None
                    if event is not None:
                        event.set()

    return ChaosTelegram()


def serve_telegram(fake: Any, loop: asyncio.AbstractEventLoop) -> ThreadingHTTPServer:
    """The fake's Bot API on 127.0.0.1 (a thread per connection; the fake runs on `loop`)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = decode_body(self.headers.get("Content-Type") or "", self.rfile.read(length))
            future = asyncio.run_coroutine_threadsafe(fake.do_request(self.path, method, form), loop)
            try:
                status, body = future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - e.g. an injected failure: a server error
                status, body = 500, json.dumps({"ok": False, "error_code": 500,
                                                "description": repr(exc)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self._answer("POST")

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError):  # the bot was killed during its request
                super().handle()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="fake-telegram", daemon=True).start()
    return server


# -- the supervisor and the killer -----------------------------------------------------------

class Supervisor:
    """`python -m cli.run` (what `make run` execs) with its output in a file; knows its children's pids."""

    STARTED = re.compile(r"\brun \| started (\w+) \(pid (\d+)\)")

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.pids: dict[str, int] = {}
        self.changed = threading.Condition()
        self.log = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", "cli.run"], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        threading.Thread(target=self._read, name="supervisor-output", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            match = self.STARTED.search(line)
            if match:
                with self.changed:
                    self.pids[match.group(1)] = int(match.group(2))
                    self.changed.notify_all()
        self.log.close()

    def wait_pid(self, name: str, other_than: int | None, timeout: float) -> int | None:
        """The pid of child `name` once it is not `other_than` (a restart)."""
        with self.changed:
            self.changed.wait_for(lambda: self.pids.get(name, other_than) != other_than, timeout)
            pid = self.pids.get(name)
        return pid if pid != other_than else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Killer:
    supervisor: Supervisor
    fake: Any
    rasa_url: str
    action_port: int
    secret: str
    order: list[str]
    rng: random.Random
    max_gap: float
    kills: Counter[str] = field(default_factory=Counter)
    recovery: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    problem: str | None = None

    def healthy(self, victim: str, killed_at: float) -> bool:
        if victim == "bot":  # a new process is polling Telegram again
            return float(self.fake.last_poll) > killed_at
        return stack_ready(self.rasa_url, self.action_port, self.secret)

    def run(self) -> None:
        for victim in self.order:
            if self.stop.wait(self.rng.uniform(1.0, self.max_gap)):
                return
            pid = self.supervisor.pids[victim]
            killed_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # its own process group (cli.run: start_new_session)
            self.kills[victim] += 1
            print(f"chaos: killed {victim} (pid {pid}) at {time.strftime('%H:%M:%S')}", file=sys.stderr)
            if self.supervisor.wait_pid(victim, pid, timeout=180) is None:
                self.problem = f"{victim} was not restarted within 180 s"
                return
            while not self.healthy(victim, killed_at):
                if self.stop.wait(0.5):
                    return
                if time.monotonic() - killed_at > 300:
                    self.problem = f"{victim} was not healthy again within 300 s"
                    return
            self.recovery.append(time.monotonic() - killed_at)
            print(f"chaos: {victim} back after {self.recovery[-1]:.1f} s", file=sys.stderr)


# -- residents ---------------------------------------------------------------------------------

@dataclass
class Input:
    uid: int
    at: float  # time.monotonic() when it reached the fake Telegram's update queue
    what: str  # "text" or "press"


@dataclass
class Transcript:
    inputs: list[Input] = field(default_factory=list)
    acknowledged: dict[int, list[str]] = field(default_factory=dict)  # uid → ticket numbers seen
    reports: int = 0
    confirmed: int = 0


class Resident:
    def __init__(self, uid: int, home: str, fake: Any, updates: Any, transcript: Transcript,
                 texts: dict[str, str], filed: re.Pattern[str], patience: float, deadline: float,
                 rng: random.Random, think: float) -> None:
        self.uid, self.home, self.fake, self.updates = uid, home, fake, updates
        self.transcript, self.texts, self.filed = transcript, texts, filed
        self.patience, self.deadline, self.rng, self.think = patience, deadline, rng, think
        self.event = fake.chat_events.setdefault(uid, asyncio.Event())
        self.seen = 0  # bot messages to this chat already read
        self.last_input = Input(uid, 0.0, "")

    def _replies(self) -> list[dict[str, Any]]:
        return list(self.fake.sent_messages(self.uid))

    def _push(self, update: Any, what: str) -> None:
        self.last_input = Input(self.uid, time.monotonic(), what)
        self.transcript.inputs.append(self.last_input)
        self.fake.push_update(update)

    async def _answer(self) -> dict[str, Any] | None:
        """The bot's latest reply once one is more than a holding message (None: patience ran out)."""
        until = min(time.monotonic() + self.patience, self.deadline)
        while True:
            self.event.clear()
            sent = self._replies()
            fresh, self.seen = sent[self.seen:], len(sent)
            for message in reversed(fresh):
                if message.get("text") not in self.texts["holding"]:
                    return message
            if self._refused_press():
                return None
            left = until - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event.wait(), left)

    def _refused_press(self) -> bool:
        """The last press was answered with 'this button no longer works' (an alert, no message)."""
        if self.last_input.what != "press":
            return False
        return any(str(c.params.get("callback_query_id", ""))[:-6] == str(self.uid)
                   and c.params.get("text") == self.texts["button_invalid"] and c.at > self.last_input.at
                   for c in reversed(self.fake.calls_to("answerCallbackQuery")))

    async def say(self, text: str) -> dict[str, Any] | None:
        self._push(self.updates.text(self.uid, text), "text")
        return await self._answer()

    async def press(self, message: dict[str, Any], data: str) -> dict[str, Any] | None:
        stored = self.fake.message(self.uid, int(message["message_id"])) or message
        self._push(self.updates.callback_query(self.uid, data, stored), "press")
        return await self._answer()

    async def report(self, text: str) -> None:
        from bot.offline import buttons  # noqa: PLC0415

        self.transcript.reports += 1
        reply = await self.say(text)
        for _ in range(MAX_STEPS):
            if reply is None:
                return
            keys = {b.get("text"): b.get("callback_data") for b in buttons(reply.get("reply_markup"))}
            body = str(reply.get("text") or "")
            if self.texts["confirm"] in keys:
                await asyncio.sleep(self.rng.expovariate(1 / self.think))
                self.transcript.confirmed += 1
                ack = await self.press(reply, str(keys[self.texts["confirm"]]))
                if ack is None and self._refused_press():  # a stale button: say it in words instead
                    ack = await self.say(self.texts["confirm"])
                found = self.filed.search(str((ack or {}).get("text") or ""))
                if found:
                    self.transcript.acknowledged.setdefault(self.uid, []).append(found.group("number"))
                return
            if keys:  # a choice (category, place): the first offered
                reply = await self.press(reply, str(next(iter(keys.values()))))
            elif body == self.texts["ask_place"]:
                reply = await self.say(f"{self.home}号楼")
            elif body == self.texts["ask_description"]:
                reply = await self.say("就是刚才说的问题，麻烦尽快处理")
            else:
                return  # an answer that asks nothing (or an apology): this report ends here


# -- the tally ---------------------------------------------------------------------------------

def _text(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


def tally(calls: list[Any], inputs: list[Input], apologies: set[str],
          queued: Counter[tuple[int, str]]) -> dict[str, Any]:
    """Duplicate messages and unanswered inputs (with what happened to each, for the log).

    `calls`: the fake Telegram's; `inputs`: the residents'; `queued`: how many outbox rows that
    may have been sent hold each (chat, text). A message is a duplicate when the chat received
    that text more often than the outbox queued it (a row delivered twice); an input is
    unanswered when the bot's messages and alerts to its chat until the next input are none,
    or only texts in `apologies`.
    """
    from bot.offline import SENDING_METHODS  # noqa: PLC0415

    events: list[tuple[float, int, str | None]] = []  # (when, chat, text); an input's text is None
    delivered: Counter[tuple[int, str]] = Counter()
    for call in calls:
        method = call.method.lower()
        if not call.ok:
            continue
        if method in SENDING_METHODS:
            chat, text = int(call.params["chat_id"]), _text(call.params)
            delivered[(chat, text)] += 1
            events.append((call.at, chat, text))
        elif method == "answercallbackquery" and call.params.get("text"):  # an alert to the presser
            events.append((call.at, int(str(call.params["callback_query_id"])[:-6]), str(call.params["text"])))
    duplicates = [f"chat {chat} received {n} times, queued {queued[(chat, text)]}: {text[:40]!r}"
                  for (chat, text), n in delivered.items() if queued[(chat, text)] and n > queued[(chat, text)]]
    replies: dict[int, list[tuple[float, list[str]]]] = {}  # chat → per input: when, its replies
    timeline = sorted([*((i.at, i.uid, None) for i in inputs), *events], key=lambda e: (e[0], e[2] is not None))
    for at, chat, what in timeline:
        if what is None:
            replies.setdefault(chat, []).append((at, []))
        elif replies.get(chat):
            replies[chat][-1][1].append(what)
    unanswered = [f"chat {chat} input at {at:.1f}: replies {texts}" for chat, per_input in replies.items()
                  for at, texts in per_input if all(text in apologies for text in texts)]
    return {"duplicate_messages": sum(n - queued[key] for key, n in delivered.items()
                                      if queued[key] and n > queued[key]),
            "unanswered": len(unanswered), "what": duplicates + unanswered}


# -- the bench -----------------------------------------------------------------------------------

def _template_regex(template: str) -> re.Pattern[str]:
    """A catalogue text with its {fields} as named groups."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(pattern + "$", re.S)


def _schedule(rng: random.Random, n: int, duration: float) -> list[float]:
    return sorted(rng.uniform(0, duration) for _ in range(n))


async def _drive(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from sqlalchemy import func, select  # noqa: PLC0415

    from bot.offline import UpdateBuilder  # noqa: PLC0415
    from core.db import make_engine, make_session_factory, session_scope  # noqa: PLC0415
    from core.messages import t  # noqa: PLC0415
    from core.models import InboxMessage, InboxState, OutboxMessage, Person, SendState, Ticket  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    fake = chaos_telegram(loop)
    server = serve_telegram(fake, loop)
    env["TELEGRAM_API_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    factory = make_session_factory(make_engine(env["DATABASE_URL"]))
    ids = [FIRST_RESIDENT + i for i in range(args.residents)]
    homes = bind_residents(factory, ids, random.Random(args.seed))

    started = time.monotonic()
    supervisor = Supervisor(env, work / "run.log")
    rasa_url, action_port, secret = env["RASA_URL"], int(env["ACTION_SERVER_PORT"]), env["GRIDBOT_SECRET"]
    print(f"chaos: waiting for the stack (logs in {work})", file=sys.stderr)
    while not (fake.last_poll and await asyncio.to_thread(stack_ready, rasa_url, action_port, secret)):
        if supervisor.process.poll() is not None or time.monotonic() - started > 300:
            supervisor.stop()
            raise SystemExit(f"bench-chaos: the stack did not come up; see {work / 'run.log'}")
        await asyncio.sleep(1)
    ready = time.monotonic()
    print(f"chaos: stack ready after {ready - started:.0f} s", file=sys.stderr)

    rng = random.Random(f"{args.seed}:killer")
    order = [victim for _ in range(args.kills) for victim in rng.sample(VICTIMS, len(VICTIMS))]
    # Kills spread over the residents' reports: on average one every duration / (kills + 1).
    killer = Killer(supervisor, fake, rasa_url, action_port, secret, order, rng,
                    max_gap=max(2.0, 2 * args.duration / (len(order) + 1)))
    killing = threading.Thread(target=killer.run, name="killer", daemon=True)
    killing.start()

    texts = {"holding": {t("rasa_down"), t("answer_failed")}, "confirm": t("report.button_confirm"),
             "button_invalid": t("button_invalid"), "ask_place": t("report.ask_place"),
             "ask_description": t("report.ask_description")}
    apologies = {*texts["holding"], t("answer_failed_final"), t("error"), t("button_invalid")}
    filed = _template_regex(t("report.filed"))
    transcript = Transcript()
    updates = UpdateBuilder(None, fake, first_update_id=1)
    deadline = ready + args.time_limit

    async def resident(uid: int) -> None:
        own = random.Random(f"{args.seed}:{uid}")
        person = Resident(uid, homes[uid], fake, updates, transcript, texts, filed, args.patience,
                          deadline, own, args.think)
        templates = own.sample(REPORTS, min(args.reports, len(REPORTS)))
        for n, at in enumerate(_schedule(own, args.reports, args.duration)):
            await asyncio.sleep(max(0.0, ready + at - time.monotonic()))
            if time.monotonic() >= deadline:
                return
            await person.report(templates[n % len(templates)].format(b=homes[uid]))

    await asyncio.gather(*(resident(uid) for uid in ids))
    print(f"chaos: residents done after {time.monotonic() - ready:.0f} s", file=sys.stderr)
    while killing.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(1)

    def open_rows() -> int:
        with session_scope(factory) as s:
            waiting = s.scalar(select(func.count()).select_from(InboxMessage)
                               .where(InboxMessage.state == InboxState.pending)) or 0
            unsent = s.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.send_state.in_([SendState.pending, SendState.sending]))) or 0
        return int(waiting + unsent)

    drain_until = time.monotonic() + 60
    while await asyncio.to_thread(open_rows) and time.monotonic() < drain_until:
        await asyncio.sleep(1)
    killer.stop.set()
    await asyncio.to_thread(supervisor.stop)
    server.shutdown()
    seconds = time.monotonic() - ready

    with session_scope(factory) as s:
        filed_by = {(number, reporter) for number, reporter in s.execute(
            select(Ticket.number, Ticket.reporter_id))}
        person_of = dict(s.execute(select(Person.telegram_id, Person.id).where(Person.telegram_id.in_(ids))).all())
        tickets = s.scalar(select(func.count()).select_from(Ticket)
                           .where(Ticket.reporter_id.in_(list(person_of.values())))) or 0
        health = _health(s)
        queued = Counter((int(chat), str((payload or {}).get("text") or "")) for chat, payload in s.execute(
            select(OutboxMessage.chat_id, OutboxMessage.payload).where(OutboxMessage.send_state.in_(
                [SendState.sent, SendState.unconfirmed, SendState.sending]))))
    seen = {(number, person_of.get(uid)) for uid, numbers in transcript.acknowledged.items() for number in numbers}
    lost = len(seen - filed_by)
    residents_ids = set(person_of.values())
    unacknowledged = sum(1 for number, reporter in filed_by if reporter in residents_ids and (number, reporter) not in seen)
    counted = tally(list(fake.calls), transcript.inputs, apologies, queued)
    for line in counted["what"]:
        print(f"chaos: {line}", file=sys.stderr)  # times: seconds on this process's monotonic clock
    return {
        "reports": transcript.reports,
        "tickets_filed": int(tickets),
        "lost": lost,
        "duplicate_messages": counted["duplicate_messages"],
        "unanswered": counted["unanswered"],
        "kills": dict(killer.kills),
        "residents": args.residents,
        "confirmed": transcript.confirmed,
        "acknowledged": sum(len(v) for v in transcript.acknowledged.values()),
        "unacknowledged_tickets": unacknowledged,  # filed, but the resident never saw 工单号
        "inputs": len(transcript.inputs),
        "recovery_s": [round(r, 1) for r in killer.recovery],
        "seconds": round(seconds),
        "health": health,
        "problem": killer.problem,
    }


def _health(session: Any) -> dict[str, int]:
    from core.health import check  # noqa: PLC0415

    state = check(session)
    return {q.name: q.count for q in state.queues if q.count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--reports", type=int, default=5, help="reports per resident")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of each of bot, Rasa and actions")
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds over which the residents' reports start")
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds before pressing 确认提交")
    parser.add_argument("--patience", type=float, default=240.0,
                        help="seconds a resident waits for an answer beyond a holding message")
    parser.add_argument("--time-limit", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gridbot-chaos-"))
    env = {**os.environ, **bench_environment(work), "PYTHONPATH": str(ROOT),
           "TELEGRAM_BOT_TOKEN": "123456:CHAOS", "LOG_DIR": str(work / "log"),
           "CALLBACK_CACHE_PATH": str(work / "telegram-callbacks.pickle"),
           "REPORT_LIMIT_PER_HOUR": str(args.reports + 10)}
    subprocess.run([sys.executable, "-m", "cli.main", "demo"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        result = asyncio.run(_drive(args, env, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{result['residents']} residents, {result['reports']} reports, {result['tickets_filed']} tickets "
          f"filed in {result['seconds']} s; kills {result['kills']}; lost {result['lost']}, "
          f"duplicate messages {result['duplicate_messages']}, unanswered {result['unanswered']}")
    print(json.dumps(result, ensure_ascii=False))
    return 0 if not (result["lost"] or result["duplicate_messages"] or result["unanswered"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
