"""Send what the outbox holds, through python-telegram-bot, exactly as the outbox says.

One pass (`run_once`) claims due rows, sends each, and records the outcome:
sent; retry later (Telegram's RetryAfter, network errors, server errors —
with the outbox's backoff); or failed for good (the user blocked the bot, the
chat does not exist, Telegram refused the message as malformed). Database work
runs in a worker thread so the bot's event loop never blocks on it.

A payload is {"text": str, "buttons": [[{"text", "callback_data"}]]?,
"photo": file_id?}; text longer than Telegram's 4,096 characters goes out in
several messages, the buttons on the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.textsplit import split_message
from core import outbox
from core.db import read_scope, session_scope
from core.models import SendState

log = logging.getLogger("gridbot.dispatcher")
CAPTION_LIMIT = 1024


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)


def keyboard(buttons: list[list[dict[str, Any]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["text"], callback_data=b.get("callback_data"), url=b.get("url"))
          for b in row] for row in buttons]
    )


async def deliver(bot: Bot, chat_id: int, payload: dict[str, Any]) -> Message:
    """Send one payload; return the last Telegram message (the one with the buttons)."""
    markup = keyboard(payload.get("buttons"))
    text = str(payload.get("text") or "")
    if payload.get("photo"):
        caption, rest = (text, "") if len(text) <= CAPTION_LIMIT else ("", text)
        sent = await bot.send_photo(chat_id, payload["photo"], caption=caption or None,
                                    reply_markup=None if rest else markup)
        if not rest:
            return sent
        text = rest
    pieces = split_message(text)
    last: Message | None = None
    for index, piece in enumerate(pieces):
        last = await bot.send_message(chat_id, piece,
                                      reply_markup=markup if index == len(pieces) - 1 else None)
    assert last is not None
    return last


class OutboxDispatcher:
    def __init__(self, bot: Bot, factory: sessionmaker[Session], batch: int = 20) -> None:
        self.bot = bot
        self.factory = factory
        self.batch = batch

    def _claim(self) -> list[outbox.Claimed]:
        with read_scope(self.factory) as session:
            if not outbox.has_due(session):  # the usual case: no write transaction at all
                return []
        with session_scope(self.factory) as session:
            return outbox.claim(session, limit=self.batch)

    def _record(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with session_scope(self.factory) as session:
            return fn(session, *args, **kwargs)

    async def run_once(self) -> DispatchStats:
        return await self.send_claimed(await asyncio.to_thread(self._claim))

    async def send_claimed(self, items: list[outbox.Claimed]) -> DispatchStats:
        """Send messages already claimed (leased) for this process, in the given order."""
        stats = DispatchStats()
        for item in items:
            outcome = await self._send(item)
            stats.outcomes[item.id] = outcome
            setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats

    async def _send(self, item: outbox.Claimed) -> str:
        try:
            message = await deliver(self.bot, item.chat_id, item.payload)
        except RetryAfter as exc:
            seconds = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else float(exc.retry_after)
            await asyncio.to_thread(self._record, outbox.retry_later, item.id, f"RetryAfter {seconds:g}s",
                                    retry_after=seconds)
            return "retried"
        except Forbidden as exc:
            await asyncio.to_thread(self._record, outbox.mark_failed, item.id, f"Forbidden: {exc.message}")
            log.info("outbox %s: recipient unreachable (%s)", item.id, exc.message)
            return "failed"
        except BadRequest as exc:
            await asyncio.to_thread(self._record, outbox.mark_failed, item.id, f"BadRequest: {exc.message}")
            log.warning("outbox %s (%s): refused by Telegram: %s", item.id, item.kind, exc.message)
            return "failed"
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            state = await asyncio.to_thread(self._record, outbox.retry_later, item.id, f"{type(exc).__name__}: {exc.message}")
            return "failed" if state is SendState.failed else "retried"
        await asyncio.to_thread(self._record, outbox.mark_sent, item.id, message.message_id)
        return "sent"

    async def run_forever(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                stats = await self.run_once()
            except Exception:  # noqa: BLE001 - keep dispatching; the error is logged
                log.exception("outbox pass failed")
                stats = DispatchStats()
            if not stats.outcomes:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
