"""`make run` (`python -m cli.run`) offline: the action server, Rasa and the chat shell on
127.0.0.1, stopped together by Ctrl-C or by the end of the chat."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.config import PROJECT_ROOT
from tests.app.stack import (
    greetings,
    listening_addresses,
    prepare_db,
    stack_env,
    start_stack,
    stop_stack,
    wait_until_ready,
)

STARTED = re.compile(r"started (\w+) \(pid (\d+)\)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_run_starts_local_servers_and_the_shell_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    prepare_db(tmp_path / "gridbot.db")
    stack = start_stack(tmp_path / "gridbot.db")
    try:
        wait_until_ready(stack)
        assert listening_addresses(stack.rasa_port) == {"127.0.0.1"}
        assert listening_addresses(stack.action_port) == {"127.0.0.1"}
        reply = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook",
                           json={"sender": "run-test", "message": "你好"}, timeout=30)
        assert reply.status_code == 200 and reply.json(), reply.text
        started = dict(STARTED.findall(stack.output()))
        assert set(started) == {"actions", "rasa", "shell"}, stack.output()
        pids = [int(p) for p in started.values()]
        assert (stack.log_dir / "rasa.log").stat().st_size > 0  # server output goes to the logs
    except BaseException:
        stack.process.kill()
        raise
    code = stop_stack(stack, signal.SIGINT)
    assert code == 0, stack.diagnostics()
    time.sleep(0.5)
    assert [p for p in pids if _alive(p)] == []
    assert listening_addresses(stack.rasa_port) == set()
    for name in ("actions", "rasa", "shell"):
        assert f"{name} stopped" in stack.output()


def test_run_offline_chats_from_a_script_and_stops_at_its_end(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    env, rasa_port, _ = stack_env(db)
    done = subprocess.run([sys.executable, "-m", "cli.run"], cwd=PROJECT_ROOT, env=env,
                          input="# 打个招呼\n你好\n", capture_output=True, text=True, timeout=400)
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report
    assert "你> 你好" in done.stdout, report
    assert any(greeting in done.stdout for greeting in greetings()), report
    assert "打个招呼" not in done.stdout and " | " not in done.stdout, report  # stdout is the chat alone
    started = dict(STARTED.findall(done.stderr))
    assert set(started) == {"actions", "rasa", "shell"}, report
    time.sleep(0.5)
    assert [p for p in map(int, started.values()) if _alive(p)] == []
    assert listening_addresses(rasa_port) == set()


def test_run_stops_everything_when_one_process_dies(tmp_path: Path) -> None:
    # An action server port that is already taken makes that child fail at once.
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    try:
        stack = start_stack(tmp_path / "gridbot.db", {"ACTION_SERVER_PORT": str(taken)})
        code = stack.process.wait(timeout=120)
    finally:
        blocker.close()
    assert code == 1
    assert "actions exited with status" in stack.output()
    assert "rasa stopped" in stack.output() and "actions stopped" in stack.output()
    assert "started shell" not in stack.output()  # the chat never started without its servers
