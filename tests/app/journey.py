"""Drive the real Application like people do: type, press buttons, send photos.

`Journey` wraps one Application built on FakeTelegram and the shared Rasa
stack; `say`/`press`/`photo` return what the bot sent to that user's chat
(and the callback answers) during that step, after the outbox was drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram.ext import Application

from bot.app import build_application
from core.config import Settings
from core.db import read_scope, session_scope
from core.messaging import buttons, prompts
from tests.app.telegram_fake import FakeTelegram
from tests.app.telegram_updates import UpdateBuilder

JSONDict = dict[str, Any]
SHOWN = {"sendmessage", "sendphoto", "editmessagetext", "editmessagecaption"}


def text_of(message: JSONDict) -> str:
    return str(message.get("text") or message.get("caption") or "")


class Journey:
    def __init__(self, app: Application, fake: FakeTelegram, factory: sessionmaker[Session]) -> None:  # type: ignore[type-arg]
        self.app, self.fake, self.factory = app, fake, factory
        self.updates = UpdateBuilder(app.bot, fake)
        self._seen = 0

    async def drain(self, settle: float = 0.0) -> None:
        """Send everything queued (also by the action server) until a pass sends nothing."""
        svc = self.app.bot_data["services"]
        deadline = time.monotonic() + settle
        while True:
            stats = await svc.dispatcher.run_once()
            if not stats.sent and time.monotonic() >= deadline:
                return
            if not stats.sent:
                await asyncio.sleep(0.05)

    def issue(self, data: Any) -> str:
        """Callback data for `data` as the bot issues it (core.messaging.buttons): a button the server accepts
        as its own, whatever it names."""
        with session_scope(self.factory) as session:
            return buttons.issue(session, data)

    def prompt(self, user_id: int) -> prompts.Asked | None:
        """The question `user_id` was last asked and has not answered (core.messaging.prompts)."""
        with read_scope(self.factory) as session:
            return prompts.current(session, user_id)

    def new_messages(self, chat_id: int | None = None) -> list[JSONDict]:
        sent = self.fake.sent_messages()
        fresh, self._seen = sent[self._seen:], len(sent)
        return [m for m in fresh if chat_id is None or m["chat_id"] == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        return [text_of(m) for m in self.fake.sent_messages(chat_id)]

    async def step(self, update: Any, chat_id: int) -> list[str]:
        """Process one update; the texts the bot sent or edited into `chat_id` meanwhile."""
        before = len(self.fake.calls)
        await self.app.process_update(update)
        await self.drain()
        return [text_of(c.params) for c in self.fake.calls[before:]
                if c.ok and c.method.lower() in SHOWN and c.params.get("chat_id") == chat_id]

    async def say(self, user_id: int, text: str) -> list[str]:
        return await self.step(self.updates.text(user_id, text), user_id)

    async def photo(self, user_id: int, file_id: str, caption: str | None = None) -> list[str]:
        return await self.step(self.updates.photo(user_id, file_id=file_id, caption=caption), user_id)

    def find_button(self, chat_id: int, title: str) -> tuple[JSONDict, str]:
        """The newest message in `chat_id` with a button titled `title`, and the button's data."""
        for sent in reversed(self.fake.sent_messages(chat_id)):
            message = self.fake.message(chat_id, sent["message_id"])
            for row in ((message or {}).get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button.get("text") == title:
                        return message, button["callback_data"]  # type: ignore[return-value]
        raise AssertionError(f"no button {title!r} in chat {chat_id}: {self.texts(chat_id)[-3:]}")

    async def press(self, user_id: int, chat_id: int, title: str) -> list[str]:
        """Press the button; returns the bot's new messages to the presser's private chat and any alert."""
        message, data = self.find_button(chat_id, title)
        answers_before = len(self.fake.calls_to("answerCallbackQuery"))
        got = await self.step(self.updates.callback_query(user_id, data, message), user_id)
        alerts = [str(c.params.get("text") or "") for c in self.fake.calls_to("answerCallbackQuery")[answers_before:]]
        return got + [a for a in alerts if a]


@asynccontextmanager
async def journey(factory: sessionmaker[Session], rasa_url: str, fake: FakeTelegram | None = None) -> AsyncIterator[Journey]:
    fake = fake or FakeTelegram()
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC", rasa_url=rasa_url)  # type: ignore[call-arg]
    app = build_application(settings, factory, request=fake, background=False)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    try:
        yield Journey(app, fake, factory)
    finally:
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()
