"""/broadcast (compose, choose the audience, preview, send now or later), /notify off|on, and the
已读 button of important notices.

/broadcast is an explicit state machine whose state is the sender's prompt (core.messaging.prompts, kind
"broadcast": the step and the draft), written in the transaction that queues each question, so
an unfinished composition survives a restart of the bot and any bot process can take the next
step (a non-language flow; Rasa is not involved):

    content (text, or photo/document with caption) -> audience buttons (with counts)
    -> 重要通知? -> 已读回执? -> preview with the recipient count -> 立即发送 | 定时发送 (a time) | 取消

Every step re-checks in core.broadcasts.service as the person behind the Telegram user; the audience
buttons list only what that person may address. A step's buttons carry ["bcc", step, value]
under a token (core.messaging.buttons); a press for another step than the open one is refused like any
unknown button. The 已读 button on the notices themselves carries the raw string "bc:r:<id>"
(bot/broadcast_sender.py sends with a plain Bot); core.broadcasts.service.mark_read counts a press only
from a recipient, once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from dateutil import parser as dateparser
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, button, respond
from core import schedule_words
from core.access.permissions import NotAllowed
from core.broadcasts import service as broadcasts
from core.config import get_settings
from core.db import session_scope
from core.messages import t
from core.messaging import prompts
from core.models import BroadcastAudience
from core.people import residents
from core.presentation import callbacks

log = logging.getLogger("gridbot.bot.broadcast")

TAG = "bcc"  # button data: ["bcc", step, value?]
TYPED_STEPS = {"content", "when"}  # steps whose answer is a message, not a press
PRESS_STEPS = {"aud": "audience", "ess": "essential", "read": "read", "now": "confirm", "later": "confirm"}


def _factory(context: ContextTypes.DEFAULT_TYPE) -> sessionmaker[Session]:
    return context.application.bot_data["services"].factory


def _buttons(*rows: list[tuple[str, list[Any]]]) -> Buttons:
    return [[button(text, [TAG, *data]) for text, data in row] for row in rows]


def is_press(data: Any) -> bool:
    return isinstance(data, list) and len(data) >= 2 and data[0] == TAG


def typed_step(asked: prompts.Asked | None) -> bool:
    """Whether the open prompt waits for a typed (or sent) answer of /broadcast."""
    return asked is not None and asked.kind == prompts.BROADCAST and asked.value.get("step") in TYPED_STEPS


def wants_content(asked: prompts.Asked | None) -> bool:
    """Whether the open prompt waits for a notice's content (a photo or a document may be it)."""
    return typed_step(asked) and asked is not None and asked.value.get("step") == "content"


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


# -- the state machine -----------------------------------------------------------------------

def _choices(s: Session, user_id: int) -> list[broadcasts.Choice]:
    return broadcasts.choices(s, residents.person_by_telegram(s, user_id))


def _step(s: Session, user_id: int, draft: dict[str, Any], step: str) -> None:
    prompts.ask(s, user_id, prompts.BROADCAST, {**draft, "step": step})


def _drop(s: Session, user_id: int, draft: dict[str, Any]) -> None:
    """Forget the draft, and the broadcast created from it if it was never queued."""
    prompts.clear(s, user_id, prompts.BROADCAST)
    if draft.get("id"):
        broadcasts.cancel(s, draft["id"], residents.person_by_telegram(s, user_id))


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/broadcast: a new draft (an unfinished one is dropped)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        if not _choices(s, user.id):
            out.send(chat_id, t("broadcast.no_audience"))
            return
        asked = prompts.current(s, user.id)
        if asked is not None and asked.kind == prompts.BROADCAST and asked.value.get("id"):
            broadcasts.cancel(s, asked.value["id"], residents.person_by_telegram(s, user.id))
        _step(s, user.id, {}, "content")
        out.send(chat_id, t("broadcast.ask_content"))

    await respond(context, work)


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    """The answer to the open typed step (`typed_step(asked)`): the content, or the time."""
    if asked.value.get("step") == "content":
        await _on_content(update, context, asked.value)
    else:
        await _on_when(update, context, asked.value)


async def _on_content(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: dict[str, Any]) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id
    if message.photo:
        draft = {**draft, "photo": message.photo[-1].file_id, "text": message.caption or ""}
    elif message.document:
        draft = {**draft, "document": message.document.file_id, "text": message.caption or ""}
    elif (message.text or "").strip() in prompts.CANCEL_WORDS:
        await cancel(update, context)
        return
    else:
        draft = {**draft, "text": message.text or ""}

    def work(s: Session, out: Outgoing) -> None:
        options = _choices(s, user.id)
        draft["choices"] = [(c.audience.value, c.community_id, c.grid_id, c.branch_id, c.label) for c in options]
        rows = [[(t("broadcast.choice", label=c.label, count=c.count), ["aud", i])] for i, c in enumerate(options)]
        rows.append([(t("broadcast.button_cancel"), ["cancel"])])
        _step(s, user.id, draft, "audience")
        out.send(chat_id, t("broadcast.ask_audience"), _buttons(*rows))

    await respond(context, work)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    """A button of the composition (`is_press(data)`): the open step's, or 取消."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    action, value = data[1], (data[2] if len(data) > 2 else None)
    message = query.message
    chat_id = message.chat.id if message is not None else user.id
    message_id = message.message_id if message is not None else None

    def show(out: Outgoing, text: str, buttons: Buttons | None = None) -> None:
        if message_id is not None:
            out.edit(chat_id, message_id, text, buttons)
        else:
            out.send(chat_id, text, buttons)

    def work(s: Session, out: Outgoing) -> bool:
        asked = prompts.current(s, user.id)
        if asked is None or asked.kind != prompts.BROADCAST:
            return False
        draft = asked.value
        if action == "cancel" and draft.get("step") not in TYPED_STEPS:
            _drop(s, user.id, draft)
            show(out, t("broadcast.cancelled"))
            return True
        if PRESS_STEPS.get(str(action)) != draft.get("step"):
            return False
        if action == "aud":
            draft["choice"] = draft["choices"][int(str(value))]
            _step(s, user.id, draft, "essential")
            show(out, t("broadcast.ask_essential"), _buttons(
                [(t("broadcast.button_essential_no"), ["ess", False]),
                 (t("broadcast.button_essential_yes"), ["ess", True])],
                [(t("broadcast.button_cancel"), ["cancel"])]))
        elif action == "ess":
            draft["essential"] = bool(value)
            _step(s, user.id, draft, "read")
            show(out, t("broadcast.ask_read"), _buttons(
                [(t("broadcast.button_read_no"), ["read", False]), (t("broadcast.button_read_yes"), ["read", True])],
                [(t("broadcast.button_cancel"), ["cancel"])]))
        elif action == "read":
            draft["read_button"] = bool(value)
            _preview(s, out, user.id, draft, show)
        elif action == "now":
            prompts.clear(s, user.id, prompts.BROADCAST)
            try:
                count = _queue(s, user.id, draft, None)
            except NotAllowed as exc:
                show(out, str(exc))
                return True
            if message_id is not None:
                out.markup(chat_id, message_id)
            out.send(user.id, t("broadcast.sending", count=count))
        else:  # later
            _step(s, user.id, draft, "when")
            if message_id is not None:
                out.markup(chat_id, message_id)
            out.send(user.id, t("broadcast.ask_time"))
        return True

    taken, _ = await respond(context, work)
    if not taken:  # no composition open, or a button of another step
        await query.answer(t("button_invalid"), show_alert=True)
        return
    await query.answer()
    if action == "now":
        sender = context.application.bot_data["services"].broadcasts
        if sender is not None:
            sender.wake()


def _preview(s: Session, out: Outgoing, user_id: int, draft: dict[str, Any], show: Any) -> None:
    audience, community_id, grid_id, branch_id, label = draft["choice"]
    try:
        b = broadcasts.create(
            s, residents.person_by_telegram(s, user_id), audience=BroadcastAudience(audience),
            community_id=community_id, grid_id=grid_id, branch_id=branch_id, text=draft.get("text", ""),
            photo_file_id=draft.get("photo"), document_file_id=draft.get("document"),
            essential=draft["essential"], read_button=draft["read_button"], progress_chat_id=user_id)
    except NotAllowed as exc:
        prompts.clear(s, user_id, prompts.BROADCAST)
        show(out, str(exc))
        return
    count, text = broadcasts.preview_count(s, b), broadcasts.message_payload(s, b)["text"]
    draft.update(id=b.id, count=count)
    _step(s, user_id, draft, "confirm")
    preview = t("broadcast.preview", text=text, label=label, count=count,
                essential=t("broadcast.preview_essential") if draft["essential"] else "",
                read=t("broadcast.preview_read") if draft["read_button"] else "")
    show(out, preview, _buttons(
        [(t("broadcast.button_now"), ["now"]), (t("broadcast.button_later"), ["later"])],
        [(t("broadcast.button_cancel"), ["cancel"])]))


def _queue(s: Session, user_id: int, draft: dict[str, Any], when: datetime | None) -> int:
    b = broadcasts.queue(s, draft["id"], residents.person_by_telegram(s, user_id), scheduled_at=when)
    return b.recipients


async def _on_when(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: dict[str, Any]) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    text = (message.text or "").strip()
    if text in prompts.CANCEL_WORDS:
        await cancel(update, context)
        return
    chat_id = message.chat_id
    now = broadcasts.utcnow()
    reading = schedule_words.parse_when(text, now, get_settings().tz) if text else None  # jionlp's reading
    when = reading.at if reading is not None else None

    def work(s: Session, out: Outgoing) -> None:
        if when is None or when <= now:  # the prompt stays: the next message is the time again
            out.send(chat_id, t("broadcast.bad_time") if when is None else t("broadcast.deny.in_past"))
            return
        try:
            count = _queue(s, user.id, draft, when)
        except NotAllowed as exc:
            out.send(chat_id, str(exc))
            return
        prompts.clear(s, user.id, prompts.BROADCAST)
        out.send(chat_id, t("broadcast.scheduled", when=when.astimezone(get_settings().tz).strftime(
            "%Y-%m-%d %H:%M"), count=count))

    await respond(context, work)


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """取消 typed, or /cancel: the open draft is dropped (nothing open: /cancel says so)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        asked = prompts.current(s, user.id)
        if asked is None or asked.kind != prompts.BROADCAST:
            out.send(chat_id, t("kind.unknown_command"))
            return
        _drop(s, user.id, asked.value)
        out.send(chat_id, t("broadcast.cancelled"))

    await respond(context, work)


# -- /notify and 已读 ----------------------------------------------------------------------------

async def on_notify(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    arg = (context.args or [""])[0].lower()

    def apply(s: Session) -> str:
        person = residents.person_by_telegram(s, user.id)
        if person is None:
            return t("deny.unknown_person")
        if arg in ("off", "on"):
            broadcasts.set_notify(s, person, on=arg == "on")
            return t(f"notify.{arg}")
        return t("notify.usage", state=t("notify.state_off" if person.notify_off else "notify.state_on"))

    chat_id = message.chat_id
    await respond(context, lambda s, out: out.send(chat_id, apply(s)))


def read_press(data: object) -> int | None:
    """The broadcast id of a 已读 press (raw data "bc:r:<id>", not a token), else None."""
    return callbacks.parse_read(data) if isinstance(data, str) else None


async def on_read(update: Update, context: ContextTypes.DEFAULT_TYPE, broadcast_id: int) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None

    def mark() -> str:
        with session_scope(_factory(context)) as s:
            return broadcasts.mark_read(s, broadcast_id, user.id)

    outcome = await asyncio.to_thread(mark)
    await query.answer({"read": t("broadcast.read_thanks"), "again": t("broadcast.read_again"),
                        "stranger": t("broadcast.read_stranger")}[outcome], show_alert=outcome == "stranger")


def register(app: Application) -> None:
    """/broadcast, /cancel and /notify (their answers and buttons are routed by bot/app.py)."""
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("broadcast", start, filters=private))
    app.add_handler(CommandHandler("cancel", cancel, filters=private))
    app.add_handler(CommandHandler("notify", on_notify, filters=private))
