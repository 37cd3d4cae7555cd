"""`make run`: start the Rasa server, the action server and the bot; stop them together.

Each child runs in its own process group with its output prefixed by its
name. Ctrl-C (SIGINT) or SIGTERM stops all three (SIGTERM, then SIGKILL after
a grace period); if one child dies on its own, the others are stopped too and
the exit status is non-zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import PROJECT_ROOT, get_settings

GRACE_SECONDS = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


def children() -> list[Child]:
    s = get_settings()
    root = PROJECT_ROOT
    rasa = root / ".venv-rasa" / "bin" / "rasa"
    app_python = root / ".venv-app" / "bin" / "python"
    return [
        Child("actions", [str(app_python), "-m", "actions"]),
        Child("rasa", [str(rasa), "run", "--enable-api", "-i", s.bind_host, "-p", str(s.rasa_port),
                       "--model", str(root / "models" / "gridbot.tar.gz"),
                       "--endpoints", str(root / "endpoints.yml"),
                       "--credentials", str(root / "credentials.yml")]),
        Child("bot", [str(app_python), "-m", "bot"]),
    ]


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


def run(out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs = children()
    env = _env()
    Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    for child in procs:
        child.process = subprocess.Popen(
            child.argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        threading.Thread(target=_pump, args=(child.name, child.process.stdout, out), daemon=True).start()
        out.write(f"{'run':>8} | started {child.name} (pid {child.process.pid})\n")
    out.flush()
    failed: Child | None = None
    while not stop.is_set():
        for child in procs:
            assert child.process is not None
            if child.process.poll() is not None:
                failed = child
                stop.set()
                break
        stop.wait(0.5)
    if failed is not None:
        out.write(f"{'run':>8} | {failed.name} exited with status {failed.process.returncode}; stopping the others\n")  # type: ignore[union-attr]
    else:
        out.write(f"{'run':>8} | stopping (signal {received[0] if received else '?'})\n")
    out.flush()
    _stop_all(procs, out)
    return 1 if failed is not None else 0


def _stop_all(procs: list[Child], out) -> None:  # type: ignore[no-untyped-def]
    for child in procs:
        if child.process and child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in procs:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            out.write(f"{'run':>8} | {child.name} did not stop in {GRACE_SECONDS:.0f} s; killing it\n")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        out.write(f"{'run':>8} | {child.name} stopped\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(run())
