"""A fake Telegram Bot API that keeps Telegram's pace, and a sender process to kill in the middle:
what the benches of mass sending share (scripts/bench_broadcast.py, scripts/bench_mobilise.py).

The fake (`serve`, run in a process of its own by the bench: `--serve PORT_FILE JOURNAL`) is an
HTTP server answering getMe, sendMessage and editMessageText like Telegram, and enforcing the
limits: more than 30 requests in any 1.0 s window, or two requests to one chat less than 1 s
apart, are answered 429 with retry_after=1 (journal "L"). Of the messages the bench counts (its
`counted` says which, and under what tag), seeded by chat id, 1% of the recipients get a 429
(retry_after=1, that chat refused for a second) on their first message ("R") and 1% are blocked
(403 on every message, "B"); the rest are delivered ("D"). Every answer is appended to a journal
file, one line "<what> <chat> <time.monotonic()> [<tag>]" (the monotonic clock is the machine's,
so the bench compares it with its own).

A request whose body did not arrive whole (its sender was killed while writing it) gets no answer
and is not carried out, as with any HTTP server.

The sender (`Sender`): the bench's own script started with its sender arguments; it prints "ready"
once it is up and idle (as the bot is when someone presses 发送), and its last line when it is
done. `Sender.kill_when` SIGKILLs it once the fake has delivered a number of messages, plus a seeded
random 0-100 ms, so that the kill lands anywhere in a send cycle, not just after a delivery.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from select import select as wait_readable
from typing import Any
from urllib.parse import parse_qs

TOKEN = "123456:BENCH"
RATE, WINDOW, PER_CHAT = 30, 1.0, 1.0
READY_SECONDS = 120

# (method, parameters) -> the tag a counted message is journalled under, or None: not counted
# (no random 429 or 403 for it either; e.g. a broadcast's progress message)
Counted = Callable[[str, dict[str, str]], str | None]


class FakeState:
    def __init__(self, journal: Path, seed: int, counted: Counted) -> None:
        self.lock = threading.Lock()
        self.window: collections.deque[float] = collections.deque()
        self.chat_next: dict[int, float] = {}  # chat -> monotonic time it may be sent to again
        self.first_seen: set[int] = set()
        self.seed = seed
        self.counted = counted
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
            tag = self.counted(method, params)
            if tag is not None:
                fate = self.fate(chat)
                if fate == "403":
                    self.journal.write(f"B {chat} {now:.4f} {tag}\n")
                    return 403, {"ok": False, "error_code": 403,
                                 "description": "Forbidden: bot was blocked by the user"}
                if fate == "429" and chat not in self.first_seen:
                    self.first_seen.add(chat)
                    self.chat_next[chat] = now + 1.0
                    self.journal.write(f"R {chat} {now:.4f} {tag}\n")
                    return 429, _too_many(1)
                self.journal.write(f"D {chat} {now:.4f} {tag}\n")
            self.message_id += 1
            return 200, {"ok": True, "result": {
                "message_id": self.message_id, "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "User"},
                "text": params.get("text", "")}}


def _too_many(seconds: int) -> dict[str, Any]:
    return {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {seconds}",
            "parameters": {"retry_after": seconds}}


def serve(port_file: Path, journal: Path, seed: int, counted: Counted, latency: float = 0.0) -> None:
    """Run the fake until killed; its port is written to `port_file` once it listens. `latency`:
    seconds each request takes to reach it (Telegram's distance; each connection has its thread)."""
    state = FakeState(journal, seed, counted)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

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
            if latency:
                time.sleep(latency)
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


def start_fake(command: list[str], env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start `command + ["--serve", PORT_FILE, JOURNAL]` (the bench's `serve`); the process, its
    port and its journal."""
    port_file, journal = work / "port", work / "journal"
    server = subprocess.Popen([*command, "--serve", str(port_file), str(journal)], env=env)
    while not port_file.exists() or not port_file.read_text():
        if server.poll() is not None:
            raise SystemExit("the fake Telegram did not start")
        time.sleep(0.05)
    return server, port_file.read_text(), journal


def stop(process: subprocess.Popen[Any]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(10)


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


@dataclass
class Journal:
    """The fake's journal, read at the end."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)  # by what
    delivered: dict[str, collections.Counter[int]] = field(default_factory=dict)  # tag -> chat -> times
    blocked: set[int] = field(default_factory=set)
    times: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)  # when a request exceeded a limit ("L")

    @classmethod
    def read(cls, path: Path) -> Journal:
        journal = cls()
        for line in path.read_text().splitlines():
            what, chat, at, *tag = line.split(" ")
            journal.counts[what] += 1
            journal.times.append(float(at))
            if what == "D":
                journal.delivered.setdefault(tag[0] if tag else "", collections.Counter())[int(chat)] += 1
            elif what == "B":
                journal.blocked.add(int(chat))
            elif what == "L":
                journal.refused.append(float(at))
        journal.times.sort()
        return journal

    def gaps(self, started: float, n: int = 3) -> str:
        """When the answers came, and the longest gaps between two (the kill's, the restart's)."""
        times = self.times
        gaps = sorted((b - a, a) for a, b in zip(times, times[1:], strict=False))[-n:]
        return (f"answers from {times[0] - started:.1f}s to {times[-1] - started:.1f}s after the start; "
                "longest gaps: " + ", ".join(f"{g:.2f}s at {a - started:.1f}s" for g, a in reversed(gaps)))


class Sender:
    """A sender process (`command`): up and idle when it prints "ready" (waited for with
    `ready`); its last stdout line when it exits."""

    def __init__(self, command: list[str], env: dict[str, str], *, ready: bool = True) -> None:
        launched = time.monotonic()
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        self.cold_start = 0.0
        if not ready:
            return
        assert self.process.stdout is not None
        readable, _, _ = wait_readable([self.process.stdout], [], [], READY_SECONDS)
        if not readable or self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise SystemExit(f"the sender was not up within {READY_SECONDS} s")
        self.cold_start = time.monotonic() - launched

    def kill_when(self, tail: JournalTail, delivered: int, seed: int) -> float:
        """SIGKILL once the fake has delivered `delivered` messages, then at a random moment up
        to 100 ms later (anywhere in a send, not just after a delivery); when it was killed."""
        while tail()["D"] < delivered and self.process.poll() is None:
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0.0, 0.1))
        self.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        self.process.wait()
        return killed

    def finish(self, timeout: float) -> str:
        """Wait for the sender to exit; its last line."""
        out, _ = self.process.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        return lines[-1] if lines else ""
