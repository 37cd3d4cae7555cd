"""The bot process (`python -m bot`, TELEGRAM_BOT_TOKEN set) when Telegram does not answer: at
start and while running it retries with backoff, logs once each time Telegram goes away and
once when it is back, and never exits for it. Telegram here is a small HTTP server speaking
the Bot API on a local port (TELEGRAM_API_URL), started and stopped under the running bot."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT
from tests.app.stack import TEST_SECRET, free_port, prepare_db

TOKEN = "123456:TEST-TOKEN"
UNREACHABLE = "WARNING gridbot.telegram: Telegram is unreachable"
BACK = "INFO gridbot.telegram: Telegram answers again"


class FakeTelegram:
    """getMe, deleteWebhook and (long-polled, empty) getUpdates; anything else: ok."""

    def __init__(self, port: int) -> None:
        self.calls: list[str] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                method = self.path.rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                calls.append(method)
                result: Any = True
                if method == "getMe":
                    result = {"id": 123456, "is_bot": True, "first_name": "gridbot", "username": "gridbot_test_bot",
                              "can_join_groups": True, "can_read_all_group_messages": False,
                              "supports_inline_queries": False}
                elif method == "getUpdates":
                    time.sleep(0.3)
                    result = []
                body = json.dumps({"ok": True, "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s; the bot's log:\n{log.read_text()[-4000:]}")


def test_the_bot_waits_out_telegram_at_start_and_while_running(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    port = free_port()
    log = tmp_path / "bot.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"sqlite:///{db}", "TELEGRAM_BOT_TOKEN": TOKEN,
           "TELEGRAM_API_URL": f"http://127.0.0.1:{port}", "RASA_URL": f"http://127.0.0.1:{free_port()}",
           "GRIDBOT_SECRET": TEST_SECRET, "LOG_LEVEL": "INFO",
           "CALLBACK_CACHE_PATH": str(tmp_path / "callbacks.pickle")}
    with log.open("wb") as out:
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    fake: FakeTelegram | None = None
    try:
        text = log.read_text
        # Nobody listens: the bot retries getMe and says so once.
        _wait_for(lambda: UNREACHABLE in text(), 60, "no 'unreachable' line", log)
        time.sleep(6)  # retries at 1, 2, 4 s …
        assert bot.poll() is None, text()
        assert text().count(UNREACHABLE) == 1 and "Traceback" not in text(), text()

        fake = FakeTelegram(port)  # Telegram is back: the bot connects and polls
        _wait_for(lambda: BACK in text() and fake is not None and "getUpdates" in fake.calls, 60,
                  "the bot did not connect", log)
        assert fake.calls[0] == "getMe"

        fake.stop()  # gone while running: polling retries, one more line
        fake = None
        _wait_for(lambda: text().count(UNREACHABLE) == 2, 60, "no second 'unreachable' line", log)
        time.sleep(6)
        assert bot.poll() is None, text()
        assert text().count(UNREACHABLE) == 2 and "Traceback" not in text(), text()

        fake = FakeTelegram(port)
        _wait_for(lambda: text().count(BACK) == 2 and fake is not None and "getUpdates" in fake.calls, 60,
                  "polling did not resume", log)
        assert bot.poll() is None
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(timeout=60) == 0, text()[-4000:]
    except BaseException:
        bot.kill()
        raise
    finally:
        if fake is not None:
            fake.stop()
    assert "Traceback" not in log.read_text()


def test_the_bot_stops_on_sigterm_while_telegram_is_unreachable(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    log = tmp_path / "bot.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"sqlite:///{db}", "TELEGRAM_BOT_TOKEN": TOKEN,
           "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}", "GRIDBOT_SECRET": TEST_SECRET,
           "CALLBACK_CACHE_PATH": str(tmp_path / "callbacks.pickle")}
    with log.open("wb") as out:
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: UNREACHABLE in log.read_text(), 60, "no 'unreachable' line", log)
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(timeout=30) == 0, log.read_text()
    finally:
        if bot.poll() is None:
            bot.kill()
    assert "bot stopped before Telegram answered" in log.read_text()
