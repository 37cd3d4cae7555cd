"""`make run`: three processes on 127.0.0.1, stopped together by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx

from tests.app.stack import listening_addresses, start_stack, stop_stack, wait_until_ready


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


def test_run_starts_three_local_processes_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "gridbot.db")
    try:
        wait_until_ready(stack)
        assert listening_addresses(stack.rasa_port) == {"127.0.0.1"}
        assert listening_addresses(stack.action_port) == {"127.0.0.1"}
        reply = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook",
                           json={"sender": "run-test", "message": "你好"}, timeout=30)
        assert reply.status_code == 200 and reply.json(), reply.text
        pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", stack.output())]
        assert len(pids) == 3
    except BaseException:
        stack.process.kill()
        raise
    code = stop_stack(stack, signal.SIGINT)
    assert code == 0, stack.output()[-3000:]
    time.sleep(0.5)
    assert [p for p in pids if _alive(p)] == []
    assert listening_addresses(stack.rasa_port) == set()
    for name in ("actions", "rasa", "bot"):
        assert f"{name} stopped" in stack.output()


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
    assert "rasa stopped" in stack.output() and "bot stopped" in stack.output()
