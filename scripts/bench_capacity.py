"""`make bench-capacity`: the highest message rate one set of processes, then two, answers in time.

The processes are the real ones, each on its own, as deploy/ runs them: the bot in webhook mode
(`python -m bot`), the Rasa server (`nlu.server`) and the action server (`python -m actions`).
Telegram is this process: bench_chaos's HTTP fake of the Bot API (bot/offline.py's
`FakeTelegram`), and it delivers each update to a bot's webhook as Telegram would.

- single: one bot, one Rasa, one action server on a throw-away SQLite database (`make run`).
- replicated: two bots, two Rasa servers (nginx balancing them on loopback, as
  deploy/nginx/gridbot.conf does) and one action server, on PostgreSQL (databases of the bench's
  own, dropped at the end) and Redis (Rasa's lock store under a key prefix of the bench's own).

Load: conversations start at RATE / 2 a second (open loop, evenly spaced with a seeded jitter):
a resident bound to a demo building reports a problem, reads the summary for about a second,
and presses 确认提交 — two messages a conversation, so RATE messages a second. Each step runs
SECONDS seconds; the rate then rises by STEP, until a step's reply p95 passes the limit
(300 ms) or a message goes unanswered. A reply's latency: from the delivery of the update to
the bot's webhook until the bot's first message (or edit) in that chat reaches "Telegram".

Each step also says where the time went: CPU seconds per wall second of each kind of process
(Rasa, actions, bot, PostgreSQL, Redis, this bench) and of everything else on the machine
(other people's work on a shared machine), the load average, and the Bot API requests a second.
With two Rasa servers, nginx also times each Rasa round trip (p50 and p95 per step).
The bots run with TELEGRAM_RATE=1000 (--telegram-rate) so that the processes are measured, not
Telegram's budget: at Telegram's own 30 requests a second, shared by every replica, a bot token
answers at most 30 / (requests per message) messages a second, which the bench prints too.

Last stdout line: {"single": {"msgs_per_s", "p95_ms"}, "replicated": {"msgs_per_s", "p95_ms"}}
(each the highest step that held, with its p95).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_chaos import chaos_telegram, serve_telegram  # noqa: E402
from scripts.bench_chat import REPORTS, bench_environment, bind_residents, free_port, percentile  # noqa: E402

P95_LIMIT_MS = 300.0
REPLY_METHODS = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendPhoto"}
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TICKS = os.sysconf("SC_CLK_TCK")


# -- the stack -------------------------------------------------------------------------------

@dataclass
class Stack:
    env: dict[str, str]
    work: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)  # the bots' webhook URLs
    cleanup: list[Any] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            env={**self.env, **(env or {}), "PYTHONPATH": str(ROOT)})

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for undo in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                undo()


def _pg_databases(tag: str) -> tuple[str, str, Any]:
    """Two throw-away PostgreSQL databases (the app's, Rasa's tracker store) and their dropper."""
    import sqlalchemy as sa  # noqa: PLC0415

    from core.db import normalise_url  # noqa: PLC0415 - psycopg 3 for postgresql:// URLs

    admin = sa.create_engine(normalise_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    names = [f"capbench_{tag}_app", f"capbench_{tag}_rasa"]
    with admin.connect() as c:
        for name in names:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN.rsplit("/", 1)[0]

    def drop() -> None:
        with admin.connect() as c:
            for name in names:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"{base}/{names[0]}", f"{base}/{names[1]}", drop


def _nginx(work: Path, port: int, upstreams: list[int]) -> list[str]:
    """nginx on loopback balancing the Rasa servers (deploy/nginx/gridbot.conf's upstream)."""
    servers = "".join(f"server 127.0.0.1:{p};" for p in upstreams)
    (work / "nginx").mkdir()
    conf = work / "nginx" / "nginx.conf"
    conf.write_text(
        "daemon off; worker_processes 1; pid nginx.pid; error_log error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http { log_format timing '$msec $request_time $uri';\n"
        "  access_log rasa.log timing; client_body_temp_path tmp; proxy_temp_path tmp;\n"
        f"  upstream rasa {{ least_conn; {servers} keepalive 32; }}\n"
        f"  server {{ listen 127.0.0.1:{port};\n"
        "    location / { proxy_pass http://rasa; proxy_http_version 1.1;\n"
        "      proxy_set_header Connection \"\"; proxy_read_timeout 60s; } } }\n")
    (work / "nginx" / "tmp").mkdir()
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(work / "nginx"), "-c", str(conf)]


def build_stack(replicas: int, telegram_url: str, work: Path, telegram_rate: int) -> Stack:
    from cli.run import rasa_lock_env  # noqa: PLC0415

    env = {**os.environ, **bench_environment(work)}
    env.update({"TELEGRAM_API_URL": telegram_url, "TELEGRAM_BOT_TOKEN": "123:BENCH",
                "REPORT_LIMIT_PER_HOUR": "1000", "LOG_LEVEL": "WARNING", "TELEGRAM_RATE": str(telegram_rate)})
    stack = Stack(env, work)
    if replicas > 1:
        tag = f"{os.getpid()}"
        app_url, tracker_url, drop = _pg_databases(tag)
        stack.cleanup.append(drop)
        # Rasa's lock store under the bench's own key prefix (a copy of deploy/endpoints.yml).
        endpoints = (ROOT / "deploy" / "endpoints.yml").read_text().replace(
            "key_prefix: gridbot", f"key_prefix: capbench{tag}")
        (work / "endpoints.yml").write_text(endpoints)
        env.update({"DATABASE_URL": app_url, "REDIS_URL": REDIS, "RASA_TRACKER_DIALECT": "postgresql",
                    "RASA_TRACKER_HOST": tracker_url, "RASA_TRACKER_DB": tracker_url.rsplit("/", 1)[1],
                    **rasa_lock_env(REDIS)})
    subprocess.run([sys.executable, "-m", "cli.main", "demo"], cwd=ROOT, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    rasa_ports = [int(env["RASA_PORT"])] + [free_port() for _ in range(replicas - 1)]
    endpoints_file = work / "endpoints.yml" if replicas > 1 else ROOT / "endpoints.yml"
    stack.start("actions", [sys.executable, "-m", "actions"])
    for i, port in enumerate(rasa_ports):
        stack.start(f"rasa{i + 1}", [str(ROOT / ".venv-rasa" / "bin" / "python"), "-m", "nlu.server", "run",
                                     "--enable-api", "-i", "127.0.0.1", "-p", str(port),
                                     "--model", str(ROOT / "models" / "gridbot.tar.gz"),
                                     "--endpoints", str(endpoints_file),
                                     "--credentials", str(ROOT / "credentials.yml")])
    rasa_url = env["RASA_URL"]
    if replicas > 1:
        port = free_port()
        stack.start("nginx", _nginx(work, port, rasa_ports))
        rasa_url = f"http://127.0.0.1:{port}"
    stack.env["RASA_URLS_DIRECT"] = ",".join(f"http://127.0.0.1:{p}" for p in rasa_ports)
    for i in range(replicas):
        hook_port = free_port()
        hook = f"http://127.0.0.1:{hook_port}/telegram/hook"
        stack.hooks.append(hook)
        stack.start(f"bot{i + 1}", [sys.executable, "-m", "bot"], {
            "RASA_URL": rasa_url, "TELEGRAM_WEBHOOK_URL": hook, "TELEGRAM_WEBHOOK_PORT": str(hook_port),
            "BOT_METRICS_PORT": str(free_port())})
    return stack


def _ready(stack: Stack) -> bool:
    import httpx  # noqa: PLC0415

    from scripts.bench_chat import stack_ready  # noqa: PLC0415

    secret = stack.env["GRIDBOT_SECRET"]
    port = int(stack.env["ACTION_SERVER_PORT"])
    if not all(stack_ready(url, port, secret) for url in stack.env["RASA_URLS_DIRECT"].split(",")):
        return False
    for hook in stack.hooks:
        try:  # the webhook answers (405 to a GET) once the bot serves it
            httpx.get(hook, timeout=2)
        except httpx.HTTPError:
            return False
    return True


def _rasa_times(work: Path, since: float, until: float) -> str:
    """The Rasa round trips nginx saw between two moments (replicated only): p50 and p95."""
    log = work / "nginx" / "rasa.log"
    if not log.exists():
        return ""
    times = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("/webhooks/") and since <= float(parts[0]) <= until:
            times.append(float(parts[1]) * 1000)
    if not times:
        return ""
    return f"; Rasa round trip p50 {statistics.median(times):.0f} ms, p95 {percentile(times, 0.95):.0f} ms"


# -- CPU accounting ----------------------------------------------------------------------------

def _cpu(pid: int) -> float:
    """CPU seconds of a process and its children that ended (user + system)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICKS


def _children_of(names: tuple[str, ...]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                comm = (entry / "comm").read_text().strip()
                if comm.startswith(names):
                    pids.append(int(entry.name))
    return pids


def _machine_busy() -> float:
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(parts) - parts[3] - parts[4]) / TICKS  # all but idle and iowait


class CpuMeter:
    """CPU seconds per kind of process between two snapshots."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def snapshot(self) -> dict[str, float]:
        kinds: dict[str, float] = {}
        for name, p in self.stack.procs.items():
            kind = name.rstrip("0123456789")
            kinds[kind] = kinds.get(kind, 0.0) + _cpu(p.pid)
        kinds["postgres"] = sum(_cpu(p) for p in _children_of(("postgres",)))
        kinds["redis"] = sum(_cpu(p) for p in _children_of(("redis-server",)))
        kinds["bench"] = _cpu(os.getpid())
        kinds["machine"] = _machine_busy()
        return kinds

    @staticmethod
    def share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        used = {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0)) / seconds for k in after}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["others"] = max(0.0, used.pop("machine") - ours)
        return {k: round(v, 2) for k, v in used.items()}


# -- the load ---------------------------------------------------------------------------------

@dataclass
class Step:
    rate: float
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: {"report": [], "press": []})
    unanswered: int = 0
    no_summary: int = 0
    telegram_requests: int = 0


class Load:
    def __init__(self, fake: Any, stack: Stack, factory: Any, secret: str, seed: int) -> None:
        import httpx  # noqa: PLC0415

        from bot.offline import UpdateBuilder  # noqa: PLC0415
        from core.messages import t  # noqa: PLC0415

        self.fake, self.stack, self.factory, self.seed = fake, stack, factory, seed
        self.updates = UpdateBuilder(None, fake, first_update_id=1)
        self.client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))
        self.headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
        self.confirm = t("report.button_confirm")
        self.next_uid = 730_000_000
        self.delivered = 0
        self.waiting: dict[int, tuple[float, asyncio.Future[dict[str, Any]]]] = {}
        self.requests = 0  # requests the bots made of "Telegram"
        original = fake.do_request

        async def recording(url: str, method: str, request_data: Any = None, *a: Any, **kw: Any):  # type: ignore[no-untyped-def]
            result = await original(url, method, request_data, *a, **kw)
            self.requests += 1
            name = url.rsplit("/", 1)[-1]
            chat = (getattr(request_data, "parameters", None) or {}).get("chat_id")
            if name in REPLY_METHODS and chat is not None:
                with contextlib.suppress(TypeError, ValueError):
                    entry = self.waiting.pop(int(chat), None)
                    if entry is not None and not entry[1].done():
                        entry[1].set_result({"at": time.perf_counter()})
            return result

        fake.do_request = recording

    def residents(self, n: int, rng: random.Random) -> list[tuple[int, str]]:
        ids = list(range(self.next_uid, self.next_uid + n))
        self.next_uid += n
        homes = bind_residents(self.factory, ids, rng)
        return [(uid, homes[uid]) for uid in ids]

    async def _deliver(self, uid: int, update: Any) -> float:
        """POST the update to a bot's webhook (round robin, as nginx would); the reply's latency in ms."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        started = time.perf_counter()
        self.waiting[uid] = (started, future)
        hook = self.stack.hooks[self.delivered % len(self.stack.hooks)]
        self.delivered += 1
        body = json.dumps(update.to_dict(), ensure_ascii=False).encode()
        for _ in range(5):
            with contextlib.suppress(Exception):
                answer = await self.client.post(hook, content=body, headers=self.headers)
                if answer.status_code == 200:
                    break
            await asyncio.sleep(0.5)
        try:
            reply = await asyncio.wait_for(future, 30)
        except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10
            self.waiting.pop(uid, None)
            return -1.0
        return (reply["at"] - started) * 1000

    async def conversation(self, uid: int, home: str, rng: random.Random, step: Step) -> None:
        from bot.offline import buttons  # noqa: PLC0415

        ms = await self._deliver(uid, self.updates.text(uid, rng.choice(REPORTS).format(b=home)))
        if ms < 0:
            step.unanswered += 1
            return
        step.latencies.append(ms)
        step.by_kind["report"].append(ms)
        summary = self.fake.last_message(uid) or {}
        keys = {b.get("text"): b.get("callback_data") for b in buttons(summary.get("reply_markup"))}
        if self.confirm not in keys:
            step.no_summary += 1
            return
        await asyncio.sleep(rng.uniform(0.5, 1.5))  # reads the summary
        ms = await self._deliver(uid, self.updates.callback_query(uid, str(keys[self.confirm]), summary))
        if ms < 0:
            step.unanswered += 1
        else:
            step.latencies.append(ms)
            step.by_kind["press"].append(ms)

    async def run_step(self, rate: float, seconds: float) -> Step:
        step = Step(rate)
        rng = random.Random(f"{self.seed}:{rate}")
        count = max(1, int(round(rate / 2 * seconds)))
        people = await asyncio.to_thread(self.residents, count, rng)
        gap = 2.0 / rate
        started = time.perf_counter()
        before = self.requests
        tasks = []
        for i, (uid, home) in enumerate(people):
            at = started + i * gap + rng.uniform(-gap / 2, gap / 2)
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            tasks.append(asyncio.create_task(self.conversation(uid, home, random.Random(f"{self.seed}:{uid}"), step)))
        await asyncio.gather(*tasks)
        step.telegram_requests = self.requests - before
        return step


async def measure(replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    from core.config import Settings  # noqa: PLC0415
    from core.db import make_engine, make_session_factory  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    fake = chaos_telegram(loop)
    server = serve_telegram(fake, loop)
    work = Path(tempfile.mkdtemp(prefix="gridbot-capacity-"))
    label = "single" if replicas == 1 else "replicated"
    stack = build_stack(replicas, f"http://127.0.0.1:{server.server_address[1]}", work, args.telegram_rate)
    best: dict[str, Any] = {"msgs_per_s": 0, "p95_ms": None}
    try:
        deadline = time.monotonic() + 300
        while not await asyncio.to_thread(_ready, stack):
            if any(p.poll() is not None for p in stack.procs.values()) or time.monotonic() > deadline:
                raise SystemExit(f"bench-capacity: the {label} stack did not come up; logs in {work}")
            await asyncio.sleep(1)
        env_settings = Settings(_env_file=None, **{  # type: ignore[call-arg]
            "gridbot_secret": stack.env["GRIDBOT_SECRET"], "database_url": stack.env["DATABASE_URL"]})
        factory = make_session_factory(make_engine(stack.env["DATABASE_URL"]))
        load = Load(fake, stack, factory, env_settings.webhook_secret(), args.seed)
        meter = CpuMeter(stack)
        await load.run_step(args.warmup, 4)  # Rasa's first turns (model, caches) and the bots' pools
        rate = float(args.start)
        cpu_start, replies, requests_start = meter.snapshot(), 0, load.requests
        print(f"{label}: {replicas} bot(s), {replicas} Rasa server(s), 1 action server "
              f"({'PostgreSQL + Redis' if replicas > 1 else 'SQLite'}); steps of {args.seconds:g} s", flush=True)
        while rate <= args.max_rate:
            cpu0, t0, t0_wall = meter.snapshot(), time.perf_counter(), time.time()
            step = await load.run_step(rate, args.seconds)
            wall = time.perf_counter() - t0
            replies += len(step.latencies)
            cpu = CpuMeter.share(cpu0, meter.snapshot(), wall)
            load1 = os.getloadavg()[0]
            rasa_times = _rasa_times(work, t0_wall, time.time())
            p50 = statistics.median(step.latencies) if step.latencies else float("nan")
            p95 = percentile(step.latencies, 0.95) if step.latencies else float("inf")
            held = p95 <= P95_LIMIT_MS and step.unanswered == 0
            print(f"{label}: {rate:5.1f} msgs/s: {len(step.latencies)} replies, p50 {p50:.0f} ms, "
                  f"p95 {p95:.0f} ms ({', '.join(f'{k} p95 {percentile(v, 0.95):.0f} ms' for k, v in step.by_kind.items() if v)}), unanswered {step.unanswered}, no summary {step.no_summary}; "
                  f"Telegram requests {step.telegram_requests / wall:.1f}/s (budget {args.telegram_rate}/s); "
                  f"CPU cores used {json.dumps(cpu)}; Rasa CPU {1000 * cpu.get('rasa', 0) / rate:.1f} ms/msg; "
                  f"load {load1:.2f}{rasa_times}"
                  f"{'' if held else '  <- over the limit'}", flush=True)
            if not held:
                if args.every_step:
                    rate += args.step
                    continue
                break
            best = {"msgs_per_s": rate, "p95_ms": round(p95, 1), "load": round(load1, 2), "cpu": cpu}
            rate += args.step
            await asyncio.sleep(2)  # let the queues empty between steps
        await load.client.aclose()
        per_message = {k: round(v * 1000 / max(1, replies), 1) for k, v in CpuMeter.share(
            cpu_start, meter.snapshot(), 1.0).items()}
        best["cpu_ms_per_msg"] = per_message
        per_reply = (load.requests - requests_start) / max(1, replies)
        print(f"{label}: Telegram pacing: {per_reply:.2f} Bot API requests per message; at Telegram's "
              f"30 a second one bot token answers at most {30 / per_reply:.0f} msgs/s of these "
              f"conversations, however many processes serve it", flush=True)
        print(f"{label}: CPU ms per message over the {replies} replies (each process kind; others: the rest "
              f"of the machine): {json.dumps(per_message)}", flush=True)
    finally:
        await asyncio.to_thread(stack.stop)
        server.shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=10, help="first step's messages a second")
    parser.add_argument("--step", type=float, default=5, help="the rise per step")
    parser.add_argument("--seconds", type=float, default=20, help="length of each step")
    parser.add_argument("--max-rate", type=float, default=200)
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--only", choices=["single", "replicated"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--telegram-rate", type=int, default=1000,
                        help="the bots' TELEGRAM_RATE: 1000 measures the processes; 30 is Telegram's own limit")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    parser.add_argument("--every-step", action="store_true",
                        help="run every step up to --max-rate, also after one over the limit (CPU per message)")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    for label, replicas in (("single", 1), ("replicated", 2)):
        if args.only in (None, label):
            best = asyncio.run(measure(replicas, args))
            result[label] = {"msgs_per_s": best["msgs_per_s"], "p95_ms": best["p95_ms"]}
            print(f"{label}: highest sustained {best['msgs_per_s']:g} msgs/s at p95 {best['p95_ms']} ms "
                  f"(load {best.get('load')}, CPU {json.dumps(best.get('cpu'))})", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
