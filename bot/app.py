"""Composition root of the bot process.

With TELEGRAM_BOT_TOKEN set it will serve Telegram (issue 3 builds the
Application here). Without a token it says so plainly and stays up, so that
`make run` supervises the same three processes either way.
"""

from __future__ import annotations

import logging
import signal
import threading

from core.config import get_settings

log = logging.getLogger("gridbot.bot")

NO_TOKEN_MESSAGE = (
    "TELEGRAM_BOT_TOKEN is not set: Telegram is off. Set it in the environment or in .env "
    "to serve Telegram. Rasa and the action server are running; stop with Ctrl-C."
)


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not settings.telegram_bot_token:
        log.warning(NO_TOKEN_MESSAGE)
    else:
        log.warning("Telegram front end not built yet (issue 3); idling")
    stop.wait()
    log.info("bot stopped")
