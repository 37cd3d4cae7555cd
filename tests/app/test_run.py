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
    channel_headers,
    free_port,
    greetings,
    listening_addresses,
    prepare_db,
    stack_env,
    start_stack,
    stop_stack,
    wait_until_ready,
)
from tests.app.test_telegram_link import TOKEN, FakeTelegram

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
        _wait_for(lambda: listening_addresses(stack.web_port) == {"127.0.0.1"}, 30, "the web process did not listen",
                  stack)
        discovery = httpx.get(f"http://127.0.0.1:{stack.web_port}/open311/v2/discovery.json", timeout=10)
        assert discovery.status_code == 200 and discovery.json()["endpoints"], discovery.text
        reply = httpx.post(stack.channel_url, json={"sender": "run-test", "message": "你好"},
                           headers=channel_headers(), timeout=30)
        assert reply.status_code == 200 and reply.json(), reply.text
        started = dict(STARTED.findall(stack.output()))
        assert set(started) == {"actions", "rasa", "web", "shell"}, stack.output()
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
    assert listening_addresses(stack.web_port) == set()
    for name in ("actions", "rasa", "web", "shell"):
        assert f"{name} stopped" in stack.output()


def test_run_offline_chats_from_a_script_and_stops_at_its_end(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    env, rasa_port, _ = stack_env(db, {"OFFLINE_LIVE": "1"})  # what `make run` does by default
    # a greeting, then a secretary's notice to the branch's members: the chat's broadcast sender sends it
    script = "# 打个招呼\n你好\n@as 700000001\n/broadcast\n今晚7点开支部大会\n" + "@press 1\n" * 4 + "@wait 8\n"
    done = subprocess.run([sys.executable, "-m", "cli.run"], cwd=PROJECT_ROOT, env=env,
                          input=script, capture_output=True, text=True, timeout=400)
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report
    assert "你> 你好" in done.stdout, report
    assert "（离线演示：党小组会（离线演示）将在2分钟后开始的提醒" in done.stdout, report
    assert done.stdout.count("【和平里第一网格党支部通知】\n  今晚7点开支部大会") == 8, report  # 7 members + preview
    assert "已发送 7/7" in done.stdout and "通知发送完毕：共 7 人，已送达 7 人" in done.stdout, report
    assert any(greeting in done.stdout for greeting in greetings()), report
    assert "打个招呼" not in done.stdout and " | " not in done.stdout, report  # stdout is the chat alone
    started = dict(STARTED.findall(done.stderr))
    assert set(started) == {"actions", "rasa", "web", "shell"}, report
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
    assert "web stopped" in stack.output()
    assert "started shell" not in stack.output()  # the chat never started without its servers


def _wait_for(predicate, timeout: float, what: str, stack) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s:\n{stack.diagnostics()}")


def test_run_restarts_a_killed_action_server_and_the_others_keep_running(tmp_path: Path) -> None:
    prepare_db(tmp_path / "gridbot.db")
    stack = start_stack(tmp_path / "gridbot.db")
    try:
        wait_until_ready(stack)
        before = dict(STARTED.findall(stack.output()))
        os.kill(int(before["actions"]), signal.SIGKILL)
        _wait_for(lambda: len(STARTED.findall(stack.output())) == 5, 30, "no restart", stack)
        assert re.search(r"actions exited with status -9 after \d+ s; restarting it in 1 s", stack.output())
        after = dict(STARTED.findall(stack.output()))
        assert after["actions"] != before["actions"] and _alive(int(after["actions"]))
        assert after["rasa"] == before["rasa"] and after["shell"] == before["shell"]
        assert _alive(int(before["rasa"])) and _alive(int(before["shell"]))
        assert stack.process.poll() is None

        def answers() -> bool:
            try:
                return httpx.get(f"{stack.action_url}/health", headers=channel_headers(), timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(answers, 60, "the new action server did not answer", stack)
        # Rasa reaches the new action server: a report runs the report form's actions.
        reply = httpx.post(stack.channel_url, json={"sender": "run-restart", "message": "电梯又坏了"},
                           headers=channel_headers(), timeout=30)
        assert reply.status_code == 200 and reply.json(), reply.text
        assert not any("gridbot_action_failed" in str(m) for m in reply.json()), reply.text
        assert (stack.log_dir / "actions.log").read_text().count("\n==== ") == 2  # both starts in its log
    except BaseException:
        stack.process.kill()
        raise
    code = stop_stack(stack, signal.SIGINT)
    assert code == 0, stack.diagnostics()
    time.sleep(0.5)
    assert [p for p in map(int, dict(STARTED.findall(stack.output())).values()) if _alive(p)] == []


def test_restart_backoff_doubles_up_to_a_cap() -> None:
    from cli.run import RESTART_CAP_SECONDS, restart_delay

    assert [restart_delay(n) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert restart_delay(30) == RESTART_CAP_SECONDS


def test_child_logs_rotate_by_size(tmp_path: Path) -> None:
    from cli.run import RotatingLog

    log = RotatingLog(tmp_path / "rasa.log", max_bytes=1000, backups=3)
    for i in range(100):
        log.write(f"line {i:03d} ".encode() + b"x" * 90 + b"\n")  # 100 bytes
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["rasa.log", "rasa.log.1", "rasa.log.2", "rasa.log.3"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    assert (tmp_path / "rasa.log").read_text().splitlines()[-1].startswith("line 099")
    assert (tmp_path / "rasa.log.3").read_text().splitlines()[0].startswith("line 060")
    again = RotatingLog(tmp_path / "rasa.log", max_bytes=1000, backups=3)  # a new start appends
    again.write(b"more\n")
    again.close()
    assert (tmp_path / "rasa.log").read_text().endswith("more\n")


def test_run_with_telegram_restarts_a_killed_child_and_sigterm_stops_all(tmp_path: Path) -> None:
    prepare_db(tmp_path / "gridbot.db")
    port = free_port()
    fake = FakeTelegram(port)
    stack = start_stack(tmp_path / "gridbot.db", {
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
        "CALLBACK_CACHE_PATH": str(tmp_path / "callbacks.pickle")})
    try:
        # The bot warms Rasa and the action server up through the secured boundaries.
        _wait_for(lambda: "warmed up" in stack.output(), 240, "the bot did not warm Rasa up", stack)
        before = dict(STARTED.findall(stack.output()))
        assert set(before) == {"actions", "rasa", "web", "bot"}
        assert "getUpdates" in fake.calls
        os.kill(int(before["actions"]), signal.SIGKILL)
        _wait_for(lambda: len(STARTED.findall(stack.output())) == 5, 30, "no restart", stack)
        after = dict(STARTED.findall(stack.output()))
        assert after["actions"] != before["actions"]
        assert after["rasa"] == before["rasa"] and after["bot"] == before["bot"] and after["web"] == before["web"]
        assert all(_alive(int(p)) for p in after.values())
        # each child's output is prefixed to ours and kept in its log
        assert "     bot | " in stack.output()
        assert {p.name for p in stack.log_dir.glob("*.log")} == {"actions.log", "rasa.log", "web.log", "bot.log"}
        assert "warmed up" in (stack.log_dir / "bot.log").read_text()
    except BaseException:
        stack.process.kill()
        fake.stop()
        raise
    code = stop_stack(stack, signal.SIGTERM)
    fake.stop()
    assert code == 0, stack.diagnostics()
    time.sleep(0.5)
    assert [p for p in map(int, dict(STARTED.findall(stack.output())).values()) if _alive(p)] == []
    for name in ("actions", "rasa", "web", "bot"):
        assert f"{name} stopped" in stack.output()
