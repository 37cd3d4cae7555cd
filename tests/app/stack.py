"""Start the real stack (`python -m cli.run`, what `make run` runs) for tests.

Without TELEGRAM_BOT_TOKEN that is offline mode: the action server and Rasa (their
output in `log_dir`) and, once Rasa answers, `gridbot shell` reading the stack's stdin.
The stack keeps stdin open (`Stack.process.stdin`), so the shell waits for input until
the stack is stopped; `script=` writes lines and closes stdin instead.

Every stack gets TEST_SECRET as GRIDBOT_SECRET (tests/app/conftest.py puts it in this
process's environment too, so the bot built in-process shares it); talk to its servers with
`channel_headers()` (our Rasa channel, the action server) and `api_headers()` (Rasa's API).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from core import secret as shared
from core.config import PROJECT_ROOT

MODEL = PROJECT_ROOT / "models" / "gridbot.tar.gz"
TEST_SECRET = secrets.token_urlsafe(32)
CHANNEL = "/webhooks/gridbot/webhook"


def channel_headers(secret: str = TEST_SECRET) -> dict[str, str]:
    """What our Rasa input channel and the action server check."""
    return {shared.SECRET_HEADER: secret}


def api_headers(secret: str = TEST_SECRET) -> dict[str, str]:
    """What Rasa's HTTP API checks (a token signed with the secret)."""
    return {"Authorization": f"Bearer {shared.rasa_jwt(secret)}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6}."""
    found: set[str] = set()
    for name, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                if width == 8:
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add(address)
    return found


@dataclass
class Stack:
    process: subprocess.Popen[str]
    rasa_port: int
    action_port: int
    log_dir: Path
    lines: list[str] = field(default_factory=list)
    web_port: int = 0  # the web process (Open311)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def channel_url(self) -> str:
        return self.rasa_url + CHANNEL

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    def output(self) -> str:
        return "".join(self.lines)

    def diagnostics(self) -> str:
        """The supervisor's output and the tails of the servers' logs, for failure messages."""
        parts = [self.output()[-3000:]]
        for log in sorted(self.log_dir.glob("*.log")):
            parts.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


def greetings() -> list[str]:
    """The texts of utter_greet as the domain has them now (up to any {slot})."""
    for path in sorted((PROJECT_ROOT / "domain").rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        variants = (data.get("responses") or {}).get("utter_greet")
        if variants:
            return [str(v["text"]).split("{")[0].strip() for v in variants if v.get("text")]
    raise AssertionError("utter_greet is not in domain/")


def stack_env(db_path: Path, extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], int, int]:
    """The environment of an offline stack on fresh ports: (env, rasa port, action port)."""
    if not MODEL.exists():
        pytest.fail(f"no trained Rasa model at {MODEL}: run `make model` (make test does)", pytrace=False)
    rasa_port, action_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "RASA_PORT": str(rasa_port),
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "ACTION_SERVER_PORT": str(action_port),
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook",
        "WEB_PORT": str(free_port()),
        "TELEGRAM_BOT_TOKEN": "",
        "LOG_DIR": str(db_path.parent / "log"),
        "PYTHONIOENCODING": "utf-8",
        "GRIDBOT_SECRET": TEST_SECRET,
        # Rasa's conversations (SQLTrackerStore) next to the stack's database, never shared
        # between stacks: the tests reuse sender ids.
        "RASA_TRACKER_DB": str(db_path.parent / "rasa-tracker.db"),
        # The chat's own background work (broadcast sender, scheduler, a demo session) would send
        # from the database the tests share, and add a session to the members' calendar.
        "OFFLINE_LIVE": "0",
        **(extra_env or {}),
    }
    return env, rasa_port, action_port


def prepare_db(db_path: Path) -> None:
    """What `make run` does first (`gridbot demo`): migrate, load categories and the demo."""
    from core.db import make_engine, make_session_factory, session_scope
    from core.migrate import upgrade
    from core.registry.importer import import_registry
    from core.tickets.categories import sync_categories

    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        sync_categories(session)
        import_registry(session, [PROJECT_ROOT / "data" / "reference" / "demo"])
    engine.dispose()


def start_stack(db_path: Path, extra_env: dict[str, str] | None = None) -> Stack:
    """Start `python -m cli.run` offline on `db_path` (migrated: see `prepare_db`)."""
    env, rasa_port, action_port = stack_env(db_path, extra_env)
    process = subprocess.Popen([sys.executable, "-m", "cli.run"], cwd=PROJECT_ROOT, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    stack = Stack(process, rasa_port, action_port, Path(env["LOG_DIR"]), web_port=int(env["WEB_PORT"]))

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return stack


def wait_until_ready(stack: Stack, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    ready = {"rasa": False, "actions": False}
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(f"the stack exited early ({stack.process.returncode}):\n{stack.diagnostics()}")
        try:
            if not ready["actions"]:
                ready["actions"] = httpx.get(f"{stack.action_url}/health", headers=channel_headers(),
                                             timeout=2).status_code == 200
            if not ready["rasa"]:
                status = httpx.get(f"{stack.rasa_url}/status", headers=api_headers(), timeout=2)
                ready["rasa"] = status.status_code == 200 and bool(status.json().get("model_file"))
        except httpx.HTTPError:
            pass
        if all(ready.values()) and "started shell" in stack.output():
            return
        time.sleep(1.0)
    pytest.fail(f"the stack was not ready in {timeout:.0f} s ({ready}):\n{stack.diagnostics()}")


def stop_stack(stack: Stack, sig: int, timeout: float = 60.0) -> int:
    stack.process.send_signal(sig)
    try:
        return stack.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        pytest.fail(f"the stack did not stop within {timeout:.0f} s:\n{stack.diagnostics()}")
    finally:
        if stack.process.stdin is not None:
            with contextlib.suppress(OSError):
                stack.process.stdin.close()
