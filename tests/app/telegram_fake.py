"""The offline Telegram Bot API the tests use; it lives in `bot/offline.py` (see there).

`gridbot shell` runs the bot on the same fake, so it is production code; this module
keeps the tests' imports working.
"""

from __future__ import annotations

from bot.offline import (
    DEFAULT_DESCRIPTIONS,
    MAX_CALLBACK_DATA_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    NOT_MODIFIED,
    SENDING_METHODS,
    FakeTelegram,
    JSONDict,
    SentCall,
    UploadedFile,
    buttons,
    chat_type_for,
    timed_out,
)

__all__ = [
    "DEFAULT_DESCRIPTIONS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "NOT_MODIFIED",
    "SENDING_METHODS",
    "FakeTelegram",
    "JSONDict",
    "SentCall",
    "UploadedFile",
    "buttons",
    "chat_type_for",
    "timed_out",
]
