"""Whether Telegram answers: the bot never exits because it does not, and says so once.

At start (`connect`): `Application.initialize` (getMe) is retried with backoff (1 s, 2 s, 4 s …
up to CAP_SECONDS) until Telegram answers or the process is told to stop. While running,
python-telegram-bot's polling loop retries by itself (backoff up to 30 s); its getUpdates
transport here (`TrackedRequest`) tells the `TelegramLink`. Either way there is one warning when
Telegram stops answering and one line when it answers again — no traceback per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application
from telegram.request import HTTPXRequest

log = logging.getLogger("gridbot.telegram")

FIRST_DELAY_SECONDS = 1.0
CAP_SECONDS = 30.0


class TelegramLink:
    def __init__(self) -> None:
        self.down_since: float | None = None

    def down(self, exc: BaseException) -> None:
        if self.down_since is not None:
            log.debug("Telegram still unreachable: %s: %s", type(exc).__name__, exc)
            return
        self.down_since = time.monotonic()
        log.warning("Telegram is unreachable (%s: %s). The bot keeps running and retries with "
                    "backoff (at most %.0f s apart), and logs once more when Telegram is back.", type(exc).__name__, exc, CAP_SECONDS)

    def up(self) -> None:
        if self.down_since is None:
            return
        log.info("Telegram answers again (unreachable for %.0f s)", time.monotonic() - self.down_since)
        self.down_since = None


class OneLineNetworkErrors(logging.Filter):
    """python-telegram-bot logs a traceback when it cannot reach Telegram on its way out (the
    last getUpdates that confirms fetched updates): one line is enough, the cause was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, NetworkError):
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_network_tracebacks() -> None:
    logging.getLogger("telegram.ext.Updater").addFilter(OneLineNetworkErrors())


class TrackedRequest(HTTPXRequest):
    """An HTTPXRequest that reports each network failure and success to a TelegramLink."""

    def __init__(self, link: TelegramLink, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        try:
            result = await super().do_request(*args, **kwargs)
        except NetworkError as exc:  # TimedOut too
            self.link.down(exc)
            raise
        self.link.up()
        return result


async def connect(app: Application, link: TelegramLink) -> bool:
    """Initialize `app` (its getMe reaches Telegram), retrying network failures with backoff.
    False if SIGINT/SIGTERM came first. InvalidToken is raised: retrying cannot fix it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        delay = FIRST_DELAY_SECONDS
        while not stop.is_set():
            try:
                await app.initialize()
            except InvalidToken:
                raise
            except NetworkError as exc:
                link.down(exc)
            else:
                link.up()
                return True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, CAP_SECONDS)
        return False
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
