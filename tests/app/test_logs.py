"""The Telegram bot token never reaches a log, at any level, from any library (core/logs.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import app as bot_app
from core.config import Settings
from core.logs import MASK, Redact, install_redaction

TOKEN = "7012345678:AAH-secret_token-Zx9kQ0vW2bLmN4pR"
URL = f"https://api.telegram.org/bot{TOKEN}/getUpdates"


@pytest.fixture
def root_output() -> Iterator[io.StringIO]:
    """Our handler on the root logger at DEBUG, as `LOG_LEVEL=DEBUG` would have it; afterwards
    the root logger as it was, without the redaction filters the test installed."""
    root = logging.getLogger()
    saved_level = root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "telegram", "telegram.ext")}
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for each in root.handlers:
            for redact in [f for f in each.filters if isinstance(f, Redact)]:
                each.removeFilter(redact)
        root.setLevel(saved_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_debug_records_from_telegram_and_httpx_come_out_redacted(root_output: io.StringIO) -> None:
    install_redaction(TOKEN, None, "")  # an unset secret is ignored
    logging.getLogger("httpx").debug('HTTP Request: %s %s "%s"', "POST", URL, "HTTP/1.1 200 OK")
    logging.getLogger("telegram.ext.Updater").debug("Calling %s with token %s", "getUpdates", TOKEN)
    logging.getLogger("telegram.Bot").debug(f"Bot token is {TOKEN}")  # in the message itself
    logging.getLogger("telegram.ext.ExtBot").debug("URL-encoded: %s", URL.replace(":", "%3A"))
    logging.getLogger("gridbot.bot").info("nothing secret here: %d", 42)
    try:
        raise ConnectionError(f"could not reach {URL}")
    except ConnectionError:
        logging.getLogger("telegram.ext.Updater").exception("polling failed")
    logging.getLogger("telegram.ext.Application").warning("stack", stack_info=True, extra={"x": TOKEN})

    text = root_output.getvalue()
    assert TOKEN not in text and TOKEN.replace(":", "%3A") not in text and "AAH-secret" not in text
    assert f'DEBUG httpx: HTTP Request: POST https://api.telegram.org/bot{MASK}/getUpdates "HTTP/1.1 200 OK"' in text
    assert f"DEBUG telegram.ext.Updater: Calling getUpdates with token {MASK}" in text
    assert f"DEBUG telegram.Bot: Bot token is {MASK}" in text
    assert f"bot{MASK}/getUpdates" in text.split("URL-encoded: ")[1]
    assert "INFO gridbot.bot: nothing secret here: 42" in text
    assert f"ConnectionError: could not reach https://api.telegram.org/bot{MASK}/getUpdates" in text


def test_without_a_secret_nothing_changes(root_output: io.StringIO) -> None:
    redact = install_redaction(None)
    assert redact.secrets == ()
    logging.getLogger("telegram").debug("plain %s", "text")
    assert root_output.getvalue() == "DEBUG telegram: plain text\n"


def test_a_redacted_record_keeps_its_level_and_name() -> None:
    record = logging.LogRecord("httpx", logging.DEBUG, __file__, 1, "GET %s", (URL,), None)
    assert Redact(TOKEN).filter(record) is True
    assert (record.levelno, record.name, record.getMessage()) == (
        logging.DEBUG, "httpx", f"GET https://api.telegram.org/bot{MASK}/getUpdates")


def test_main_installs_the_redaction_on_the_root_handlers(root_output: io.StringIO, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """bot.app.main() with a token: every record reaching the root handlers is redacted (the root
    logger has handlers here, so main's basicConfig adds none and the redaction goes on ours)."""
    settings = Settings(_env_file=None, telegram_bot_token=TOKEN, log_level="DEBUG",  # type: ignore[call-arg]
                        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")

    async def connect(app: Any, link: Any) -> bool:  # what the running bot's libraries log
        logging.getLogger("telegram.ext.Updater").debug("Network loop: %s", URL)
        logging.getLogger("httpx").warning("HTTP Request: POST %s 502", URL)
        return False  # as if stopped before Telegram answered: main() ends there

    monkeypatch.setattr(bot_app, "get_settings", lambda: settings)
    monkeypatch.setattr(bot_app, "build_application", lambda *a, **k: object())
    monkeypatch.setattr(bot_app, "connect", connect)
    bot_app.main()
    text = root_output.getvalue()
    assert TOKEN not in text
    assert f"Network loop: https://api.telegram.org/bot{MASK}/getUpdates" in text
    assert f"HTTP Request: POST https://api.telegram.org/bot{MASK}/getUpdates 502" in text
    assert all(any(isinstance(f, Redact) for f in h.filters) for h in logging.getLogger().handlers)
