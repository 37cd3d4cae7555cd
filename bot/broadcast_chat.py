"""/broadcast (compose, choose the audience, preview, send now or later), /notify off|on, and the
已读 button of important notices.

/broadcast is an explicit state machine whose state is the sender's prompt (core.messaging.prompts, kind
"broadcast": the step and the draft), written in the transaction that queues each question, so
an unfinished composition survives a restart of the bot and any bot process can take the next
step (a non-language flow; Rasa is not involved):

    content (text, or photo/document with caption) -> audience buttons (with counts)
    -> 重要通知? -> 已读回执? -> preview with the recipient count -> 立即发送 | 定时发送 (a time) | 取消

A cancel word (core.messaging.prompts.CANCEL_WORDS: 取消, 算了, 不发了 …) typed at any step drops the draft.
Another command typed while a draft is open does not drop it silently: the command runs, and
the bot asks whether to keep the draft ("继续编辑草稿" carries the whole draft in its button's
data, so nothing else has to hold it; "不要了" drops it). /broadcasts lists the sender's
scheduled notices (each with a cancel button) and the recent ones with their delivery report and
read count (core.broadcasts.listing).

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
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.replies import Buttons, Outgoing, button, respond
from core import schedule_words
from core.access.permissions import NotAllowed
from core.broadcasts import listing as broadcast_list
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
PRESS_STEPS = {"aud": "audience", "ess": "essential", "read": "read", "now": "confirm", "later": "confirm",
               "when_ok": "when"}


def _factory(context: ContextTypes.DEFAULT_TYPE) -> sessionmaker[Session]:
    return context.application.bot_data["services"].factory


def _buttons(*rows: list[tuple[str, list[Any]]]) -> Buttons:
    return [[button(text, [TAG, *data]) for text, data in row] for row in rows]


def is_press(data: Any) -> bool:
    return isinstance(data, list) and len(data) >= 2 and data[0] == TAG


def typed_step(asked: prompts.Asked | None) -> bool:
    """Whether the open prompt waits for a typed (or sent) answer of /broadcast."""
    return asked is not None and asked.kind == prompts.BROADCAST and asked.value.get("step") in TYPED_STEPS


def takes_text(asked: prompts.Asked | None, text: str) -> bool:
    """Whether a typed text belongs to /broadcast: the answer of a typed step, or a cancel word at
    any step (anything else typed while buttons are open goes on as a message of its own)."""
    return typed_step(asked) or (asked is not None and asked.kind == prompts.BROADCAST
                                 and text.strip() in prompts.CANCEL_WORDS)


def wants_content(asked: prompts.Asked | None) -> bool:
    """Whether the open prompt waits for a notice's content (a photo or a document may be it)."""
    return typed_step(asked) and asked is not None and asked.value.get("step") == "content"


# -- time ---------------------------------------------------------------------------------------

def when_of(text: str, now: datetime) -> schedule_words.Reading | None:
    """The answer to 定时发送's question: the one place the draft's typed time is read (jionlp's
    reading; `sure` is False when the bot filled something in, e.g. the hour of 下周一上午)."""
    return schedule_words.parse_when(text, now, get_settings().tz) if text else None


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
    """A message `takes_text` gave to /broadcast: a cancel word, the content, or the time."""
    message = update.effective_message
    if message is not None and (message.text or "").strip() in prompts.CANCEL_WORDS:
        await cancel(update, context)
    elif asked.value.get("step") == "content":
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
        _step(s, user.id, draft, "audience")
        _ask_audience(out, lambda o, text, b=None: o.send(chat_id, text, b), draft, [c.count for c in options])

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
        if action == "resume":  # a draft kept when another command came in the middle
            _resume(s, out, user.id, dict(value or {}), show)
            return True
        if action == "drop":
            if value:
                _drop_broadcast(s, user.id, int(value))
            show(out, t("broadcast.cancelled"))
            return True
        if action == "unschedule":
            try:
                broadcast_list.cancel_scheduled(s, int(str(value)), residents.person_by_telegram(s, user.id))
            except NotAllowed as exc:
                out.send(user.id, str(exc))
                return True
            out.send(user.id, t("broadcast.cancelled_scheduled", id=value))
            return True
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
            _ask_essential(out, show)
        elif action == "ess":
            draft["essential"] = bool(value)
            _step(s, user.id, draft, "read")
            _ask_read(out, show)
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
        elif action == "when_ok":  # the bot's reading of an unclear time, confirmed
            when = datetime.fromisoformat(str(value))
            if when <= broadcasts.utcnow():
                show(out, t("broadcast.deny.in_past"))
                return True
            _schedule(s, user.id, draft, when, lambda text: show(out, text))
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


def _ask_audience(out: Outgoing, show: Any, draft: dict[str, Any], counts: list[int] | None = None) -> None:
    rows = [[(t("broadcast.choice", label=c[4], count=counts[i] if counts else "?"), ["aud", i])]
            for i, c in enumerate(draft["choices"])]
    rows.append([(t("broadcast.button_cancel"), ["cancel"])])
    show(out, t("broadcast.ask_audience"), _buttons(*rows))


def _ask_essential(out: Outgoing, show: Any) -> None:
    show(out, t("broadcast.ask_essential"), _buttons(
        [(t("broadcast.button_essential_no"), ["ess", False]),
         (t("broadcast.button_essential_yes"), ["ess", True])],
        [(t("broadcast.button_cancel"), ["cancel"])]))


def _ask_read(out: Outgoing, show: Any) -> None:
    show(out, t("broadcast.ask_read"), _buttons(
        [(t("broadcast.button_read_no"), ["read", False]), (t("broadcast.button_read_yes"), ["read", True])],
        [(t("broadcast.button_cancel"), ["cancel"])]))


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


def _schedule(s: Session, user_id: int, draft: dict[str, Any], when: datetime, say: Any) -> None:
    """Queue the draft for `when` and close it, or say why not (the draft stays open)."""
    try:
        count = _queue(s, user_id, draft, when)
    except NotAllowed as exc:
        say(str(exc))
        return
    prompts.clear(s, user_id, prompts.BROADCAST)
    say(t("broadcast.scheduled", when=when.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M"), count=count))


async def _on_when(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: dict[str, Any]) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    text = (message.text or "").strip()
    if text in prompts.CANCEL_WORDS:
        await cancel(update, context)
        return
    chat_id = message.chat_id
    now = broadcasts.utcnow()
    reading = when_of(text, now)
    when = reading.at if reading is not None else None

    def work(s: Session, out: Outgoing) -> None:
        if when is None or when <= now:  # the prompt stays: the next message is the time again
            out.send(chat_id, t("broadcast.bad_time") if when is None else t("broadcast.deny.in_past"))
            return
        if reading is not None and not reading.sure:  # say what was read; a press confirms, a new time replaces it
            out.send(chat_id, t("broadcast.confirm_when", when=reading.says(get_settings().tz)),
                     _buttons([(t("broadcast.button_when_ok"), ["when_ok", when.isoformat()])]))
            return
        _schedule(s, user.id, draft, when, lambda text: out.send(chat_id, text))

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


# -- another command in the middle of a draft --------------------------------------------------

def _drop_broadcast(s: Session, user_id: int, broadcast_id: int) -> None:
    try:
        broadcasts.cancel(s, broadcast_id, residents.person_by_telegram(s, user_id))
    except NotAllowed:
        log.info("a kept draft's broadcast %s was not the presser's (user %s)", broadcast_id, user_id)


def _resume(s: Session, out: Outgoing, user_id: int, draft: dict[str, Any], show: Any) -> None:
    """Open a kept draft again at its step, asking that step's question again."""
    step = str(draft.get("step") or "content")
    asked = prompts.current(s, user_id)
    if asked is not None and asked.kind == prompts.BROADCAST and asked.value.get("id") \
            and asked.value.get("id") != draft.get("id"):
        _drop_broadcast(s, user_id, int(asked.value["id"]))  # the newer unfinished draft gives way
    out.send(user_id, t("broadcast.resumed"))
    new = lambda o, text, b=None: o.send(user_id, text, b)  # noqa: E731 - the questions come as new messages
    if step == "confirm":
        if draft.get("id"):
            _drop_broadcast(s, user_id, int(draft["id"]))  # the preview makes a fresh one
        _preview(s, out, user_id, {k: v for k, v in draft.items() if k not in ("id", "count")}, new)
        return
    _step(s, user_id, draft, step)
    if step == "audience":
        _ask_audience(out, new, draft)
    elif step == "essential":
        _ask_essential(out, new)
    elif step == "read":
        _ask_read(out, new)
    elif step == "when":
        out.send(user_id, t("broadcast.ask_time"))
    else:
        out.send(user_id, t("broadcast.ask_content"))


async def on_other_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any command but /cancel while a draft is open (it runs before the command's own handler,
    which then runs as usual): the draft is set aside and the sender asked whether to keep it."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or not message.text:
        return
    command = message.text.split()[0].split("@")[0].lower()
    if command in prompts.CANCEL_WORDS:
        return

    def work(s: Session, out: Outgoing) -> None:
        asked = prompts.current(s, user.id)
        if asked is None or asked.kind != prompts.BROADCAST:
            return
        draft = asked.value
        prompts.clear(s, user.id, prompts.BROADCAST)
        text = (draft.get("text") or "").replace("\n", " ")
        preview = (text[:20] + ("…" if len(text) > 20 else "")) if text else t("broadcast.draft_empty")
        out.send(message.chat_id, t("broadcast.keep_draft", preview=preview), _buttons(
            [(t("broadcast.button_resume"), ["resume", draft]), (t("broadcast.button_drop"), ["drop", draft.get("id")])]))

    await respond(context, work)


# -- /broadcasts ---------------------------------------------------------------------------------

def broadcasts_reply(s: Session, user_id: int) -> tuple[str, Buttons]:
    person = residents.person_by_telegram(s, user_id)
    if person is None:
        return t("deny.unknown_person"), []
    scheduled, recent = broadcast_list.listing(s, person, tz=get_settings().tz)
    if not scheduled and not recent:
        return t("broadcast.list_none"), []
    lines = [t("broadcast.list_header"), t("broadcast.list_scheduled")]
    lines += [x.line for x in scheduled] or [t("broadcast.list_none_scheduled")]
    if recent:
        lines += [t("broadcast.list_recent"), *(x.line for x in recent)]
    rows = [[(t("broadcast.button_cancel_scheduled", id=x.broadcast.id), ["unschedule", x.broadcast.id])]
            for x in scheduled]
    return "\n".join(lines), _buttons(*rows)


async def on_broadcasts(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/broadcasts: the sender's scheduled notices (取消 #n) and recent ones with their report."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        text, rows = broadcasts_reply(s, user.id)
        out.send(chat_id, text, rows or None)

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
    # Before every other handler (group -1), and without stopping them: a draft is set aside.
    app.add_handler(MessageHandler(private & filters.COMMAND, on_other_command), group=-1)
    app.add_handler(CommandHandler("broadcasts", on_broadcasts, filters=private))
    app.add_handler(CommandHandler("broadcast", start, filters=private))
    app.add_handler(CommandHandler("cancel", cancel, filters=private))
    app.add_handler(CommandHandler("notify", on_notify, filters=private))
