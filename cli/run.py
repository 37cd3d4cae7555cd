"""`make run`: start the action server, Rasa, the web process and the bot — or, offline, the chat shell.

The shared secret (`core/secret.py`: GRIDBOT_SECRET, else generated in var/secret) is resolved
first and handed to every child as GRIDBOT_SECRET; with a non-loopback BIND_HOST and no
GRIDBOT_SECRET nothing starts (exit status 2).

With TELEGRAM_BOT_TOKEN: four children (actions, rasa, web, bot), each in its own process group,
its output prefixed by its name on our stdout and written to LOG_DIR/<name>.log. A child that
dies is started again after a backoff, as systemd's Restart=always with a growing RestartSec
would (1 s, 2 s, 4 s … up to RESTART_CAP_SECONDS; back to 1 s once it had run
STABLE_SECONDS), while the others keep running. Ctrl-C (SIGINT) or SIGTERM stops all four
(SIGTERM, then SIGKILL after a grace period).

Without it (offline mode): the action server, Rasa and the web process (Open311, web/) start
with their output in LOG_DIR/<name>.log (var/log/ by default), so the terminal stays
readable; once Rasa answers, `gridbot shell --live` runs in the foreground on this terminal's
stdin and stdout, with the broadcast sender and the duty scheduler (bot/shell.py; OFFLINE_LIVE).
A server that dies before the stack was ready is a failed start: everything stops
(exit status 1, the tail of its log shown); one that dies later is restarted as above. When
the shell ends (Ctrl-D, the end of a piped script) or on Ctrl-C, the servers are stopped; the
exit status is the shell's. The supervisor's own lines go to stderr here, so stdout is the
chat alone.

Every LOG_DIR/<name>.log rotates at LOG_MAX_BYTES: <name>.log.1 … <name>.log.<LOG_BACKUPS>.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import unquote, urlsplit

import httpx

from core import secret as shared
from core.config import PROJECT_ROOT, get_settings

GRACE_SECONDS = 20.0
READY_SECONDS = 300.0  # the longest offline mode waits for Rasa to load its model
WAIT_NOTICE_SECONDS = 15.0
LOG_TAIL_LINES = 20
RESTART_FIRST_SECONDS = 1.0
RESTART_CAP_SECONDS = 60.0
STABLE_SECONDS = 60.0  # a child that ran this long before dying is restarted after 1 s again
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


class RotatingLog:
    """A child's output file, rotated by size as logging's RotatingFileHandler does:
    name.log → name.log.1 → … → name.log.<backups>, the oldest dropped. Thread-safe: the
    output of a child and of its restarted successor may overlap for a moment."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None  # its output is written to this file (rotated)
    echo: bool = False  # its output is also prefixed to ours (Telegram mode)
    foreground: bool = False  # shares our terminal and process group (the shell); never restarted
    sink: RotatingLog | None = None
    pump: threading.Thread | None = None  # copies its output to the sink (and to ours)
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each before it had run STABLE_SECONDS
    restart_at: float | None = None  # dead, to be started again at this monotonic time


def _app_python() -> str:
    return str(PROJECT_ROOT / ".venv-app" / "bin" / "python")


def servers() -> list[Child]:
    s = get_settings()
    root = PROJECT_ROOT
    rasa_python = root / ".venv-rasa" / "bin" / "python"
    return [
        Child("actions", [_app_python(), "-m", "actions"]),
        # nlu/server.py: `rasa run` with its HTTP API behind the shared secret (--jwt-secret).
        Child("rasa", [str(rasa_python), "-m", "nlu.server", "run", "--enable-api",
                       "-i", s.bind_host, "-p", str(s.rasa_port),
                       "--model", str(root / "models" / "gridbot.tar.gz"),
                       "--endpoints", str(endpoints_file(s.redis_url)),
                       "--credentials", str(root / "credentials.yml")]),
        # web/: Open311 GeoReport v2 on WEB_HOST:WEB_PORT (127.0.0.1:8080 by default).
        Child("web", [_app_python(), "-m", "web"]),
    ]


def children() -> list[Child]:
    """The four processes of the Telegram mode."""
    return [*servers(), Child("bot", [_app_python(), "-m", "bot"])]


def _pump(child: Child, stream, out) -> None:
    for raw in iter(stream.readline, b""):
        if child.sink is not None:
            child.sink.write(raw)
        if child.echo:
            out.write(f"{child.name:>8} | {raw.decode('utf-8', 'replace')}")
            out.flush()
    stream.close()


def _secret(out: TextIO) -> str | None:
    """The shared secret for the children; None (and why, on stderr) if we must not start."""
    settings = get_settings()
    configured = settings.gridbot_secret.get_secret_value() if settings.gridbot_secret else None
    try:
        secret, origin = shared.resolve(configured, settings.bind_host)
    except shared.SecretError as exc:
        sys.stderr.write(f"{'run':>8} | {exc}\n")
        sys.stderr.flush()
        return None
    _say(out, f"shared secret from {origin}")
    return secret


def endpoints_file(redis_url: str | None) -> Path:
    """Rasa's endpoints: ../endpoints.yml on one machine; with REDIS_URL, deploy/endpoints.yml
    (Rasa's lock store in Redis, so several Rasa servers can share the tracker store)."""
    return PROJECT_ROOT / ("deploy/endpoints.yml" if redis_url else "endpoints.yml")


def rasa_lock_env(redis_url: str) -> dict[str, str]:
    """deploy/endpoints.yml's RASA_LOCK_REDIS_* settings from a redis:// URL."""
    url = urlsplit(redis_url)
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise ValueError("REDIS_URL must look like redis://[:password@]host[:port][/db]")
    db = url.path.strip("/") or "0"
    return {"RASA_LOCK_REDIS_HOST": url.hostname, "RASA_LOCK_REDIS_PORT": str(url.port or 6379),
            "RASA_LOCK_REDIS_DB": db if db.isdigit() else "0",
            "RASA_LOCK_REDIS_PASSWORD": unquote(url.password or "")}


def _env(secret: str) -> dict[str, str]:
    s = get_settings()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.setdefault("ACTION_ENDPOINT_URL", f"http://127.0.0.1:{s.action_server_port}/webhook")
    if s.redis_url:
        for name, value in rasa_lock_env(s.redis_url).items():
            env.setdefault(name, value)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env[shared.ENV_NAME] = secret
    return env


def _say(out: TextIO, text: str) -> None:
    out.write(f"{'run':>8} | {text}\n")
    out.flush()


def _start(child: Child, env: dict[str, str], out: TextIO) -> None:
    child.restart_at = None
    child.started_at = time.monotonic()
    if child.foreground:  # stdin, stdout and Ctrl-C of our terminal
        child.process = subprocess.Popen(child.argv, cwd=PROJECT_ROOT, env=env)
        _say(out, f"started {child.name} (pid {child.process.pid})")
        return
    if child.log is not None and child.sink is None:
        child.sink = RotatingLog(child.log)
    if child.sink is not None:
        child.sink.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(child.argv)}\n".encode())
    child.process = subprocess.Popen(
        child.argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    child.pump = threading.Thread(target=_pump, args=(child, child.process.stdout, out), daemon=True)
    child.pump.start()
    where = f", output in {child.log}" if child.log is not None and not child.echo else ""
    _say(out, f"started {child.name} (pid {child.process.pid}){where}")


def _dead(procs: list[Child]) -> Child | None:
    for child in procs:
        if child.process is not None and child.process.poll() is not None:
            return child
    return None


def restart_delay(failures: int) -> float:
    """Seconds before the restart after `failures` quick deaths in a row: 1, 2, 4 … capped."""
    return min(RESTART_FIRST_SECONDS * 2 ** max(0, failures - 1), RESTART_CAP_SECONDS)


def _tend(procs: list[Child], env: dict[str, str], out: TextIO) -> None:
    """Schedule the restart of children that died; start the ones whose backoff is over."""
    now = time.monotonic()
    for child in procs:
        if child.foreground:
            continue
        if child.process is None:
            if child.restart_at is not None and now >= child.restart_at:
                _start(child, env, out)
            continue
        code = child.process.poll()
        if code is None:
            continue
        ran = now - child.started_at
        child.failures = 1 if ran >= STABLE_SECONDS else child.failures + 1
        delay = restart_delay(child.failures)
        _say(out, f"{child.name} exited with status {code} after {ran:.0f} s; "
                  f"restarting it in {delay:.0f} s (the others keep running)")
        child.process = None
        child.restart_at = now + delay


def _signals() -> tuple[threading.Event, list[int]]:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop, received


def run(out=sys.stdout) -> int:
    if not get_settings().telegram_bot_token:
        return run_offline()
    secret = _secret(out)
    if secret is None:
        return 2
    stop, received = _signals()
    settings = get_settings()
    procs = children()
    for child in procs:
        child.log, child.echo = settings.log_dir / f"{child.name}.log", True
    env = _env(secret)
    Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    for child in procs:
        _start(child, env, out)
    while not stop.is_set():
        _tend(procs, env, out)
        stop.wait(0.5)
    _say(out, f"stopping (signal {received[0] if received else '?'})")
    _stop_all(procs, out)
    return 0


def run_offline(out: TextIO = sys.stderr) -> int:
    """Servers with their logs in files, then `gridbot shell` in the foreground."""
    secret = _secret(out)
    if secret is None:
        return 2
    stop, received = _signals()
    settings = get_settings()
    env = _env(secret)
    Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    procs = servers()
    for child in procs:
        child.log = settings.log_dir / f"{child.name}.log"
    _say(out, "TELEGRAM_BOT_TOKEN is not set: offline mode, the chat runs in this terminal")
    for child in procs:
        _start(child, env, out)

    shell: Child | None = None
    failed: Child | None = None
    ready = _wait_until_ready(settings.rasa_url, env["ACTION_ENDPOINT_URL"], secret, procs, stop, out,
                              log=settings.log_dir / "rasa.log")
    if ready is True:
        shell = Child("shell", shell_argv(settings.offline_live), foreground=True)
        _start(shell, env, out)
        procs.append(shell)
        while not stop.is_set() and shell.process is not None and shell.process.poll() is None:
            _tend(procs, env, out)  # a server that dies now is restarted; the chat goes on
            stop.wait(0.2)
    elif isinstance(ready, Child):
        failed = ready

    status = 0
    if failed is not None:
        _say(out, f"{failed.name} exited with status {failed.process.returncode}; stopping the others")  # type: ignore[union-attr]
        _tail(failed, out)
        status = 1
    elif shell is not None and shell.process is not None and shell.process.poll() is not None:
        status = shell.process.returncode
        _say(out, "the chat ended; stopping the servers" if status == 0
             else f"shell exited with status {status}; stopping the servers")
    elif ready is False and not stop.is_set():
        _say(out, f"Rasa did not answer within {READY_SECONDS:.0f} s; see {settings.log_dir / 'rasa.log'}")
        status = 1
    else:
        _say(out, f"stopping (signal {received[0] if received else '?'})")
    _stop_all(procs, out)
    return status


def shell_argv(live: bool) -> list[str]:
    """The offline chat; `live` (OFFLINE_LIVE, on by default): with the broadcast sender and the duty
    scheduler running as in the bot process (bot/shell.py). The tests' shared stack turns it off, so
    that nothing but the test itself sends from the database it shares."""
    return [_app_python(), "-m", "cli.main", "shell", *(["--live"] if live else [])]


def _wait_until_ready(rasa_url: str, action_endpoint: str, secret: str, procs: list[Child],
                      stop: threading.Event, out: TextIO, log: Path) -> bool | Child:
    """True once Rasa has loaded its model and the action server answers; the child that
    died meanwhile; False on timeout or a signal."""
    status_url = rasa_url.rstrip("/") + "/status"
    health_url = action_endpoint.rsplit("/", 1)[0] + "/health"
    _say(out, f"waiting for Rasa to load the model (usually 30-60 s; its log: {log}) ...")
    started = time.monotonic()
    notice = started + WAIT_NOTICE_SECONDS
    rasa_token = shared.RasaToken(secret)
    checks: dict[str, Callable[[], bool]] = {
        "rasa": lambda: _get_json(status_url, rasa_token.headers()).get("model_file") is not None,
        "actions": lambda: bool(_get_json(health_url, {shared.SECRET_HEADER: secret})),
    }
    done: set[str] = set()
    while not stop.is_set():
        dead = _dead(procs)
        if dead is not None:
            return dead
        for name, check in checks.items():
            if name not in done and check():
                done.add(name)
        if done == set(checks):
            _say(out, f"Rasa is ready after {time.monotonic() - started:.0f} s; "
                      "starting the chat (Ctrl-D or Ctrl-C ends it)")
            return True
        now = time.monotonic()
        if now - started > READY_SECONDS:
            return False
        if now >= notice:
            _say(out, f"still waiting for {' and '.join(sorted(set(checks) - done))} "
                      f"({now - started:.0f} s) ...")
            notice = now + WAIT_NOTICE_SECONDS
        stop.wait(1.0)
    return False


def _get_json(url: str, headers: dict[str, str]) -> dict:
    try:
        response = httpx.get(url, headers=headers, timeout=2.0)
        if response.status_code == 200:
            body = response.json()
            return body if isinstance(body, dict) and body else {"ok": True}
    except (httpx.HTTPError, ValueError):
        pass
    return {}


def _tail(child: Child, out: TextIO) -> None:
    _drain(child)
    if child.log is None or not child.log.exists():
        return
    lines = child.log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    for line in lines:
        out.write(f"{child.name:>8} | {line}\n")
    out.flush()


def _signal_child(child: Child, sig: int) -> None:
    assert child.process is not None
    with contextlib.suppress(ProcessLookupError):
        if child.foreground:  # it shares our process group
            child.process.send_signal(sig)
        else:
            os.killpg(child.process.pid, sig)


def _stop_all(procs: list[Child], out) -> None:
    running = [c for c in reversed(procs) if c.process is not None]  # the shell (last) first
    for child in running:
        assert child.process is not None
        if child.process.poll() is None:
            _signal_child(child, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(out, f"{child.name} did not stop in {GRACE_SECONDS:.0f} s; killing it")
            _signal_child(child, signal.SIGKILL)
            child.process.wait()
        _say(out, f"{child.name} stopped")
    for child in procs:
        if child.process is None and child.restart_at is not None:
            _say(out, f"{child.name} stopped (it was waiting to be restarted)")
        _drain(child)
        if child.sink is not None:
            child.sink.close()


def _drain(child: Child) -> None:
    """Wait (briefly) until the output of a child that ended is all written."""
    if child.pump is not None:
        child.pump.join(timeout=2.0)


if __name__ == "__main__":
    sys.exit(run())
