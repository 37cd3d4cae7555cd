"""A dispatcher in a process of its own, for the kill -9 test (tests/app/test_dispatcher.py).

    python -m tests.app.outbox_child <database url> <telegram log>

Sends the outbox until nothing is due, through a FakeTelegram that takes `DELAY` seconds
per request and, like Telegram, keeps what it carried out: one JSON line per delivered
message ({"chat_id", "text"}) appended to <telegram log> before it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from telegram import Bot

from bot.dispatcher import OutboxDispatcher
from bot.offline import FakeTelegram
from core.db import make_engine, make_session_factory

DELAY = 0.005


class RecordingTelegram(FakeTelegram):
    def __init__(self, log_path: str, delay: float = DELAY) -> None:
        super().__init__()
        self.delay = delay
        self.fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any,
                         **kwargs: Any) -> tuple[int, bytes]:
        await asyncio.sleep(self.delay)
        status, body = await super().do_request(url, method, request_data, *args, **kwargs)
        call = self.calls[-1] if self.calls else None
        if call is not None and status == 200 and call.method.lower() in ("sendmessage", "sendphoto"):
            line = {"chat_id": call.params.get("chat_id"),
                    "text": call.params.get("text") or call.params.get("caption") or ""}
            os.write(self.fd, (json.dumps(line, ensure_ascii=False) + "\n").encode())  # one write: atomic
        return status, body


async def main(url: str, log_path: str) -> None:
    factory = make_session_factory(make_engine(url))
    bot = Bot("123:ABC", request=RecordingTelegram(log_path))
    await bot.initialize()
    dispatcher = OutboxDispatcher(bot, factory)
    while (await dispatcher.run_once()).outcomes:
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
