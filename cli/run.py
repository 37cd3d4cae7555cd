"""`make run`: start the action server, Rasa and the bot — or, offline, the chat shell.

With TELEGRAM_BOT_TOKEN: three children (actions, rasa, bot), each in its own
process group with its output prefixed by its name. Ctrl-C (SIGINT) or SIGTERM
stops all three (SIGTERM, then SIGKILL after a grace period); if one child dies
on its own, the others are stopped too and the exit status is non-zero.

Without it (offline mode): the action server and Rasa start with their output
in LOG_DIR/actions.log and LOG_DIR/rasa.log (var/log/ by default), so the
terminal stays readable; once Rasa answers, `gridbot shell` runs in the
foreground on this terminal's stdin and stdout. When the shell ends (Ctrl-D,
the end of a piped script) or on Ctrl-C, the servers are stopped; the exit
status is the shell's. The supervisor's own lines go to stderr here, so stdout
is the chat alone.
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
from typing import TextIO

import httpx

from core.config import PROJECT_ROOT, get_settings

GRACE_SECONDS = 20.0
READY_SECONDS = 300.0  # the longest offline mode waits for Rasa to load its model
WAIT_NOTICE_SECONDS = 15.0
LOG_TAIL_LINES = 20


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None  # output goes to this file instead of prefixed to ours
    foreground: bool = False  # shares our terminal and process group (the shell)


def _app_python() -> str:
    return str(PROJECT_ROOT / ".venv-app" / "bin" / "python")


def servers() -> list[Child]:
    s = get_settings()
    root = PROJECT_ROOT
    rasa = root / ".venv-rasa" / "bin" / "rasa"
    return [
        Child("actions", [_app_python(), "-m", "actions"]),
        Child("rasa", [str(rasa), "run", "--enable-api", "-i", s.bind_host, "-p", str(s.rasa_port),
                       "--model", str(root / "models" / "gridbot.tar.gz"),
                       "--endpoints", str(root / "endpoints.yml"),
                       "--credentials", str(root / "credentials.yml")]),
    ]


def children() -> list[Child]:
    """The three processes of the Telegram mode."""
    return [*servers(), Child("bot", [_app_python(), "-m", "bot"])]


def _pump(name: str, stream, out) -> None:  # type: ignore[no-untyped-def]
    for raw in iter(stream.readline, b""):
        out.write(f"{name:>8} | {raw.decode('utf-8', 'replace')}")
        out.flush()


def _env() -> dict[str, str]:
    s = get_settings()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.setdefault("ACTION_ENDPOINT_URL", f"http://127.0.0.1:{s.action_server_port}/webhook")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _say(out: TextIO, text: str) -> None:
    out.write(f"{'run':>8} | {text}\n")
    out.flush()


def _start(child: Child, env: dict[str, str], out: TextIO) -> None:
    if child.foreground:  # stdin, stdout and Ctrl-C of our terminal
        child.process = subprocess.Popen(child.argv, cwd=PROJECT_ROOT, env=env)
        _say(out, f"started {child.name} (pid {child.process.pid})")
        return
    if child.log is not None:
        child.log.parent.mkdir(parents=True, exist_ok=True)
        with child.log.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(child.argv)}\n".encode())
            log.flush()
            child.process = subprocess.Popen(
                child.argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        _say(out, f"started {child.name} (pid {child.process.pid}), output in {child.log}")
        return
    child.process = subprocess.Popen(
        child.argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    threading.Thread(target=_pump, args=(child.name, child.process.stdout, out), daemon=True).start()
    _say(out, f"started {child.name} (pid {child.process.pid})")


def _dead(procs: list[Child]) -> Child | None:
    for child in procs:
        if child.process is not None and child.process.poll() is not None:
            return child
    return None


def _signals() -> tuple[threading.Event, list[int]]:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop, received


def run(out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    if not get_settings().telegram_bot_token:
        return run_offline()
    stop, received = _signals()
    procs = children()
    env = _env()
    Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    for child in procs:
        _start(child, env, out)
    failed: Child | None = None
    while not stop.is_set():
        failed = _dead(procs)
        if failed is not None:
            break
        stop.wait(0.5)
    if failed is not None:
        _say(out, f"{failed.name} exited with status {failed.process.returncode}; stopping the others")  # type: ignore[union-attr]
    else:
        _say(out, f"stopping (signal {received[0] if received else '?'})")
    _stop_all(procs, out)
    return 1 if failed is not None else 0


def run_offline(out: TextIO = sys.stderr) -> int:
    """Servers with their logs in files, then `gridbot shell` in the foreground."""
    stop, received = _signals()
    settings = get_settings()
    env = _env()
    Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    procs = servers()
    for child in procs:
        child.log = settings.log_dir / f"{child.name}.log"
    _say(out, "TELEGRAM_BOT_TOKEN is not set: offline mode, the chat runs in this terminal")
    for child in procs:
        _start(child, env, out)

    shell: Child | None = None
    failed: Child | None = None
    ready = _wait_until_ready(settings.rasa_url, env["ACTION_ENDPOINT_URL"], procs, stop, out,
                              log=settings.log_dir / "rasa.log")
    if ready is True:
        shell = Child("shell", [_app_python(), "-m", "cli.main", "shell"], foreground=True)
        _start(shell, env, out)
        procs.append(shell)
        while not stop.is_set():
            dead = _dead(procs)
            if dead is not None:
                failed = None if dead is shell else dead
                break
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


def _wait_until_ready(rasa_url: str, action_endpoint: str, procs: list[Child], stop: threading.Event,
                      out: TextIO, log: Path) -> bool | Child:
    """True once Rasa has loaded its model and the action server answers; the child that
    died meanwhile; False on timeout or a signal."""
    status_url = rasa_url.rstrip("/") + "/status"
    health_url = action_endpoint.rsplit("/", 1)[0] + "/health"
    _say(out, f"waiting for Rasa to load the model (usually 30-60 s; its log: {log}) ...")
    started = time.monotonic()
    notice = started + WAIT_NOTICE_SECONDS
    checks: dict[str, Callable[[], bool]] = {
        "rasa": lambda: _get_json(status_url).get("model_file") is not None,
        "actions": lambda: bool(_get_json(health_url)),
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


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    try:
        response = httpx.get(url, timeout=2.0)
        if response.status_code == 200:
            body = response.json()
            return body if isinstance(body, dict) and body else {"ok": True}
    except (httpx.HTTPError, ValueError):
        pass
    return {}


def _tail(child: Child, out: TextIO) -> None:
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


def _stop_all(procs: list[Child], out) -> None:  # type: ignore[no-untyped-def]
    for child in reversed(procs):  # the shell (last) first: it talks to the others
        if child.process and child.process.poll() is None:
            _signal_child(child, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in reversed(procs):
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(out, f"{child.name} did not stop in {GRACE_SECONDS:.0f} s; killing it")
            _signal_child(child, signal.SIGKILL)
            child.process.wait()
        _say(out, f"{child.name} stopped")


if __name__ == "__main__":
    sys.exit(run())
