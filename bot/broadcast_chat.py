"""/broadcast (compose, choose the audience, preview, send now or later), /notify off|on, and the
已读 button of important notices.

/broadcast is a python-telegram-bot ConversationHandler (a non-language flow; Rasa is not
involved):

    content (text, or photo/document with caption) -> audience buttons (with counts)
    -> 重要通知? -> 已读回执? -> preview with the recipient count -> 立即发送 | 定时发送 (a time) | 取消

Every step re-checks in core.broadcasts as the person behind the Telegram user; the audience
buttons list only what that person may address. Button data is a tuple through the
Application's callback data cache. The 已读 button on the notices themselves carries the raw
string "bc:r:<id>" (bot/broadcast_sender.py sends with a plain Bot), so it arrives here as
InvalidCallbackData whose callback_data is that string; core.broadcasts.mark_read counts a
press only from a recipient, once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from datetime import datetime, timedelta
from typing import Any

from dateutil import parser as dateparser
from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    InvalidCallbackData,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from core import broadcasts, workflow
from core.config import get_settings
from core.db import read_scope, session_scope
from core.messages import t
from core.models import BroadcastAudience
from core.permissions import NotAllowed

log = logging.getLogger("gridbot.bot.broadcast")

CONTENT, AUDIENCE, ESSENTIAL, READ, CONFIRM, WHEN = range(6)
DRAFT = "broadcast_draft"  # user_data key
CANCEL_WORDS = {"取消", "算了", "/cancel"}
TAG = "bcc"


def _factory(context: ContextTypes.DEFAULT_TYPE) -> sessionmaker[Session]:
    return context.application.bot_data["services"].factory  # type: ignore[no-any-return]


def _draft(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any]:
    assert context.user_data is not None
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[no-any-return]


def _buttons(*rows: list[tuple[str, tuple[Any, ...]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=(TAG, *data)) for text, data in row]
                                 for row in rows])


def _is(step: str) -> Any:
    return lambda data: isinstance(data, tuple) and len(data) >= 2 and data[0] == TAG and data[1] == step


# -- time ---------------------------------------------------------------------------------------

_DAY = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2}
_CN_TIME = re.compile(r"^(今天|今日|明天|明日|后天)?\s*(早上|上午|中午|下午|晚上)?\s*(\d{1,2})\s*(?:[点:：时]\s*(\d{1,2}|半)?\s*分?)?$")


def parse_when(text: str, now: datetime) -> datetime | None:
    """A time the sender typed, in the bot's zone ("明天9点", "下午3点半", "2026-11-25 09:00"); aware."""
    tz = get_settings().tz
    local_now = now.astimezone(tz)
    text = text.strip()
    m = _CN_TIME.match(text)
    if m:
        day, part, hour_s, minute_s = m.groups()
        hour = int(hour_s)
        minute = 30 if minute_s == "半" else int(minute_s or 0)
        if part in ("下午", "晚上") and hour < 12:
            hour += 12
        if hour > 23 or minute > 59:
            return None
        when = (local_now + timedelta(days=_DAY.get(day or "今天", 0))).replace(
            hour=hour, minute=minute, second=0, microsecond=0)
        if day is None and when <= local_now:
            when += timedelta(days=1)  # "9点" said after nine: tomorrow
        return when
    try:
        parsed = dateparser.parse(text, default=local_now.replace(second=0, microsecond=0, tzinfo=None))
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


# -- the conversation -------------------------------------------------------------------------

async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None

    def load() -> list[broadcasts.Choice]:
        with read_scope(_factory(context)) as s:
            return broadcasts.choices(s, workflow.person_by_telegram(s, user.id))

    if not await asyncio.to_thread(load):
        await message.reply_text(t("broadcast.no_audience"))
        return ConversationHandler.END
    context.user_data[DRAFT] = {}  # type: ignore[index]
    await message.reply_text(t("broadcast.ask_content"))
    return CONTENT


async def on_content(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    draft = _draft(context)
    if message.photo:
        draft.update(photo=message.photo[-1].file_id, text=message.caption or "")
    elif message.document:
        draft.update(document=message.document.file_id, text=message.caption or "")
    else:
        if (message.text or "").strip() in CANCEL_WORDS:
            return await cancel(update, context)
        draft.update(text=message.text or "")

    def load() -> list[broadcasts.Choice]:
        with read_scope(_factory(context)) as s:
            return broadcasts.choices(s, workflow.person_by_telegram(s, user.id))

    options = await asyncio.to_thread(load)
    draft["choices"] = [(c.audience.value, c.community_id, c.grid_id, c.branch_id, c.label) for c in options]
    rows = [[(t("broadcast.choice", label=c.label, count=c.count), ("aud", i))] for i, c in enumerate(options)]
    rows.append([(t("broadcast.button_cancel"), ("cancel",))])
    await message.reply_text(t("broadcast.ask_audience"), reply_markup=_buttons(*rows))
    return AUDIENCE


async def on_audience(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    assert query is not None
    await query.answer()
    draft = _draft(context)
    draft["choice"] = draft["choices"][query.data[2]]  # type: ignore[index]
    await query.edit_message_text(t("broadcast.ask_essential"), reply_markup=_buttons(
        [(t("broadcast.button_essential_no"), ("ess", False)), (t("broadcast.button_essential_yes"), ("ess", True))],
        [(t("broadcast.button_cancel"), ("cancel",))]))
    return ESSENTIAL


async def on_essential(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    assert query is not None
    await query.answer()
    _draft(context)["essential"] = bool(query.data[2])  # type: ignore[index]
    await query.edit_message_text(t("broadcast.ask_read"), reply_markup=_buttons(
        [(t("broadcast.button_read_no"), ("read", False)), (t("broadcast.button_read_yes"), ("read", True))],
        [(t("broadcast.button_cancel"), ("cancel",))]))
    return READ


async def on_read_choice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    await query.answer()
    draft = _draft(context)
    draft["read_button"] = bool(query.data[2])  # type: ignore[index]
    audience, community_id, grid_id, branch_id, label = draft["choice"]

    def create() -> tuple[int, int, str]:
        with session_scope(_factory(context)) as s:
            b = broadcasts.create(
                s, workflow.person_by_telegram(s, user.id), audience=BroadcastAudience(audience),
                community_id=community_id, grid_id=grid_id, branch_id=branch_id, text=draft.get("text", ""),
                photo_file_id=draft.get("photo"), document_file_id=draft.get("document"),
                essential=draft["essential"], read_button=draft["read_button"], progress_chat_id=user.id)
            return b.id, broadcasts.preview_count(s, b), broadcasts.message_payload(s, b)["text"]

    try:
        broadcast_id, count, text = await asyncio.to_thread(create)
    except NotAllowed as exc:
        await query.edit_message_text(str(exc))
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        return ConversationHandler.END
    draft.update(id=broadcast_id, count=count)
    preview = t("broadcast.preview", text=text, label=label, count=count,
                essential=t("broadcast.preview_essential") if draft["essential"] else "",
                read=t("broadcast.preview_read") if draft["read_button"] else "")
    await query.edit_message_text(preview, reply_markup=_buttons(
        [(t("broadcast.button_now"), ("now",)), (t("broadcast.button_later"), ("later",))],
        [(t("broadcast.button_cancel"), ("cancel",))]))
    return CONFIRM


def _queue(context: ContextTypes.DEFAULT_TYPE, user_id: int, when: datetime | None) -> int:
    draft = _draft(context)
    with session_scope(_factory(context)) as s:
        b = broadcasts.queue(s, draft["id"], workflow.person_by_telegram(s, user_id), scheduled_at=when)
        return b.recipients


async def on_now(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    await query.answer()
    try:
        count = await asyncio.to_thread(_queue, context, user.id, None)
    except NotAllowed as exc:
        await query.edit_message_text(str(exc))
        return ConversationHandler.END
    await query.edit_message_reply_markup(None)
    await context.bot.send_message(user.id, t("broadcast.sending", count=count))
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    sender = context.application.bot_data["services"].broadcasts
    if sender is not None:
        sender.wake()
    return ConversationHandler.END


async def on_later(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    assert query is not None
    await query.answer()
    await query.edit_message_reply_markup(None)
    await context.bot.send_message(query.from_user.id, t("broadcast.ask_time"))
    return WHEN


async def on_when(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    text = (message.text or "").strip()
    if text in CANCEL_WORDS:
        return await cancel(update, context)
    now = broadcasts.utcnow()
    when = parse_when(text, now)
    if when is None or when <= now:
        await message.reply_text(t("broadcast.bad_time") if when is None else t("broadcast.deny.in_past"))
        return WHEN
    try:
        count = await asyncio.to_thread(_queue, context, user.id, when)
    except NotAllowed as exc:
        await message.reply_text(str(exc))
        return WHEN
    await message.reply_text(t("broadcast.scheduled", when=when.astimezone(get_settings().tz).strftime(
        "%Y-%m-%d %H:%M"), count=count))
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    return ConversationHandler.END


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    user = update.effective_user
    assert user is not None
    draft = context.user_data.pop(DRAFT, {}) if context.user_data is not None else {}
    if draft.get("id"):
        def drop() -> None:
            with session_scope(_factory(context)) as s:
                broadcasts.cancel(s, draft["id"], workflow.person_by_telegram(s, user.id))
        await asyncio.to_thread(drop)
    if update.callback_query is not None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(t("broadcast.cancelled"))
    elif update.effective_message is not None:
        await update.effective_message.reply_text(t("broadcast.cancelled"))
    return ConversationHandler.END


def conversation() -> ConversationHandler:  # type: ignore[type-arg]
    private = filters.ChatType.PRIVATE
    cancel_button = CallbackQueryHandler(cancel, pattern=_is("cancel"))
    with warnings.catch_warnings():
        # per_message=False on purpose: one composition per user, whatever message the buttons are on
        warnings.simplefilter("ignore", PTBUserWarning)
        return _conversation(private, cancel_button)


def _conversation(private: Any, cancel_button: CallbackQueryHandler) -> ConversationHandler:  # type: ignore[type-arg]
    return ConversationHandler(
        entry_points=[CommandHandler("broadcast", start, filters=private)],
        states={
            CONTENT: [MessageHandler(private & (filters.PHOTO | filters.Document.ALL), on_content),
                      MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_content)],
            AUDIENCE: [CallbackQueryHandler(on_audience, pattern=_is("aud")), cancel_button],
            ESSENTIAL: [CallbackQueryHandler(on_essential, pattern=_is("ess")), cancel_button],
            READ: [CallbackQueryHandler(on_read_choice, pattern=_is("read")), cancel_button],
            CONFIRM: [CallbackQueryHandler(on_now, pattern=_is("now")),
                      CallbackQueryHandler(on_later, pattern=_is("later")), cancel_button],
            WHEN: [MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_when)],
        },
        fallbacks=[CommandHandler("cancel", cancel)],
        name="broadcast", allow_reentry=True,
    )


# -- /notify and 已读 ----------------------------------------------------------------------------

async def on_notify(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    arg = (context.args or [""])[0].lower()

    def apply() -> str:
        with session_scope(_factory(context)) as s:
            person = workflow.person_by_telegram(s, user.id)
            if person is None:
                return t("deny.unknown_person")
            if arg in ("off", "on"):
                broadcasts.set_notify(s, person, on=arg == "on")
                return t(f"notify.{arg}")
            return t("notify.usage", state=t("notify.state_off" if person.notify_off else "notify.state_on"))

    await message.reply_text(await asyncio.to_thread(apply))


def read_press(data: object) -> int | None:
    """The broadcast id of a 已读 press (raw data, so InvalidCallbackData to the cache), else None."""
    raw = data.callback_data if isinstance(data, InvalidCallbackData) else data
    return broadcasts.parse_read(raw) if isinstance(raw, str) else None


async def on_read(update: Update, context: ContextTypes.DEFAULT_TYPE, broadcast_id: int) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None

    def mark() -> str:
        with session_scope(_factory(context)) as s:
            return broadcasts.mark_read(s, broadcast_id, user.id)

    outcome = await asyncio.to_thread(mark)
    await query.answer({"read": t("broadcast.read_thanks"), "again": t("broadcast.read_again"),
                        "stranger": t("broadcast.read_stranger")}[outcome], show_alert=outcome == "stranger")


def register(app: Application) -> None:  # type: ignore[type-arg]
    """/broadcast and /notify; add before the catch-all text and button handlers."""
    app.add_handler(conversation())
    app.add_handler(CommandHandler("notify", on_notify, filters=filters.ChatType.PRIVATE))
