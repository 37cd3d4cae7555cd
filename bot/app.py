"""Composition root of the bot process.

`build_application` assembles python-telegram-bot's Application: Defaults,
arbitrary callback data, handlers, the error handler, and — owned by
post_init/post_shutdown — the Rasa client, the outbox dispatcher and the
inbox replay loop. Free text goes inbox → Rasa → outbox; nothing a resident
says is lost when Rasa is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import Application, ContextTypes, Defaults, MessageHandler, filters
from telegram.request import BaseRequest

from bot.conversation import answer_pending
from bot.dispatcher import OutboxDispatcher
from bot.rasa_client import RasaClient
from core import inbox, outbox
from core.config import Settings, get_settings
from core.db import make_engine, make_session_factory, session_scope
from core.messages import t

log = logging.getLogger("gridbot.bot")

NO_TOKEN_MESSAGE = (
    "TELEGRAM_BOT_TOKEN is not set: Telegram is off. Set it in the environment or in .env "
    "to serve Telegram. Rasa and the action server are running; stop with Ctrl-C."
)
RASA_TEXT_LIMIT = 1000  # characters of one message that go to the classifier
REPLAY_SECONDS = 5.0


class Services:
    """Long-lived resources of one Application, created in post_init."""

    def __init__(self, factory: sessionmaker[Session], rasa: RasaClient) -> None:
        self.factory = factory
        self.rasa = rasa
        self.dispatcher: OutboxDispatcher | None = None
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.lock = asyncio.Lock()  # one inbox pass at a time keeps each sender's order

    async def answer(self) -> None:
        async with self.lock:
            result = await answer_pending(self.factory, self.rasa)
        if self.dispatcher is not None and (result.answered or result.rasa_down):
            await self.dispatcher.run_once()


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]  # type: ignore[no-any-return]


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or message.text is None:
        return
    svc = services(context)
    text = message.text.strip()
    meta = {"message_id": message.message_id, "original_text": text}
    too_long = len(text) > RASA_TEXT_LIMIT

    def record() -> bool:
        with session_scope(svc.factory) as session:
            row = inbox.accept(session, sender_id=user.id, chat_id=message.chat_id,
                               text=text[:RASA_TEXT_LIMIT], meta=meta)
            if too_long:
                outbox.enqueue(session, dedupe_key=f"too-long:{row.id}", kind="notice",
                               chat_id=message.chat_id, payload={"text": t("too_long", limit=RASA_TEXT_LIMIT)})
            return True

    await asyncio.to_thread(record)
    async with svc.lock:
        result = await answer_pending(svc.factory, svc.rasa)
        if result.rasa_down:
            await asyncio.to_thread(_tell_waiting, svc.factory, message.chat_id, message.message_id)
    if svc.dispatcher is not None:
        await svc.dispatcher.run_once()


def _tell_waiting(factory: sessionmaker[Session], chat_id: int, message_id: int) -> None:
    with session_scope(factory) as session:
        outbox.enqueue(session, dedupe_key=f"rasa-down:{chat_id}:{message_id}", kind="notice",
                       chat_id=chat_id, payload={"text": t("rasa_down")})


async def on_sticker(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(t("sticker"))


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.edited_message is not None:
        await update.edited_message.reply_text(t("edited"))


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(t("unsupported"))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(Exception):
            await context.bot.send_message(update.effective_chat.id, t("error"))


async def _replay_loop(svc: Services) -> None:
    """Answer messages that waited for Rasa, once it is back."""
    while not svc.stop.is_set():
        try:
            await svc.answer()
        except Exception:  # noqa: BLE001 - keep the loop alive; logged
            log.exception("inbox replay failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(svc.stop.wait(), timeout=REPLAY_SECONDS)


def build_application(settings: Settings, factory: sessionmaker[Session], *,
                      request: BaseRequest | None = None, rasa: RasaClient | None = None,
                      background: bool = True) -> Application:  # type: ignore[type-arg]
    svc = Services(factory, rasa or RasaClient(settings.rasa_url))

    async def post_init(app: Application) -> None:  # type: ignore[type-arg]
        svc.dispatcher = OutboxDispatcher(app.bot, factory)
        if background:
            svc.tasks = [asyncio.create_task(svc.dispatcher.run_forever(svc.stop)),
                         asyncio.create_task(_replay_loop(svc))]

    async def post_shutdown(app: Application) -> None:  # type: ignore[type-arg]
        svc.stop.set()
        for task in svc.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        await svc.rasa.aclose()

    builder = (
        Application.builder()
        .token(settings.telegram_bot_token or "0:offline")
        .defaults(Defaults(tzinfo=settings.tz))
        .arbitrary_callback_data(True)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    app.bot_data["services"] = svc
    private = filters.ChatType.PRIVATE
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, on_edited))
    app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(MessageHandler(private & filters.Sticker.ALL, on_sticker))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.COMMAND, on_other))
    app.add_error_handler(on_error)
    return app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the bot token in URLs
    if not settings.telegram_bot_token:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        log.warning(NO_TOKEN_MESSAGE)
        stop.wait()
        log.info("bot stopped")
        return
    factory = make_session_factory(make_engine(settings.database_url))
    app = build_application(settings, factory)
    app.run_polling(allowed_updates=Update.ALL_TYPES, stop_signals=(signal.SIGINT, signal.SIGTERM))
    log.info("bot stopped")
