"""The buttons on ticket cards (领单 办结 上报社区 退回 联系人) and on the rating question.

Every press is re-checked by core.workflow: who is pressing, may they do this
to this ticket, now. Callback data is a short string ("t:claim:12",
"r:12:3") that goes through python-telegram-bot's callback data cache, so data
the bot never sent arrives as InvalidCallbackData and is refused before this
module sees it. 办结 and 退回 need a note: the presser is asked for it in their
private chat, and their next private message (text, or a photo with a caption)
is the note.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from core import workflow
from core.db import session_scope
from core.messages import t
from core.models import Ticket

log = logging.getLogger("gridbot.bot.tickets")

PROMPT = "ticket_prompt"  # user_data key: (action, ticket id) waiting for a note
NOTE_ACTIONS = {"resolve", "reject"}
ACTIONS = {"claim", "resolve", "escalate", "reject", "contact"}
SCORES = {1, 2, 3}


class Refused(Exception):
    pass


def _run(factory: sessionmaker[Session], user_id: int, fn: Callable[..., Any], ticket_id: int,
         *args: Any) -> Any:
    """Call a workflow function as the person behind `user_id`, in one transaction."""
    with session_scope(factory) as s:
        person = workflow.person_by_telegram(s, user_id)
        if person is None:
            raise Refused(t("ticket.unknown_person"))
        try:
            return fn(s, ticket_id, person, *args)
        except workflow.NotAllowed as exc:
            raise Refused(str(exc)) from exc


def _check(s: Session, ticket_id: int, person: Any, action: str) -> str:
    ticket = s.get(Ticket, ticket_id)
    if ticket is None:
        raise workflow.NotAllowed(t("ticket.not_found"))
    workflow.check(s, person, action, ticket)
    return ticket.number


def parse(data: str) -> tuple[str, int, int | None] | None:
    """("claim", 12, None) for "t:claim:12"; ("rate", 12, 3) for "r:12:3"; None for anything else."""
    parts = data.split(":")
    try:
        if len(parts) == 3 and parts[0] == "t" and parts[1] in ACTIONS:
            return parts[1], int(parts[2]), None
        if len(parts) == 3 and parts[0] == "r" and int(parts[2]) in SCORES:
            return "rate", int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return None


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, parsed: tuple[str, int, int | None],
                   factory: sessionmaker[Session]) -> bool:
    """Handle a ticket button; True when something was queued for sending."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    action, ticket_id, score = parsed
    try:
        if action == "claim":
            await asyncio.to_thread(_run, factory, user.id, workflow.claim, ticket_id)
            await query.answer(t("ticket.claimed_toast"))
        elif action == "escalate":
            await asyncio.to_thread(_run, factory, user.id, workflow.escalate, ticket_id)
            await query.answer(t("ticket.escalated_toast"))
        elif action == "contact":
            details = await asyncio.to_thread(_run, factory, user.id, workflow.contact_details, ticket_id)
            await query.answer(details, show_alert=True)
            return False
        elif action == "rate":
            await asyncio.to_thread(_run, factory, user.id, workflow.rate, ticket_id, score)
            await query.answer(t("ticket.rated_toast"))
            with contextlib.suppress(TelegramError):
                await query.edit_message_reply_markup(None)
        else:  # resolve / reject: ask for the note in private
            number = await asyncio.to_thread(_run, factory, user.id, _check, ticket_id, action)
            try:
                await context.bot.send_message(user.id, t(f"ticket.ask_{action}", number=number))
            except TelegramError:
                await query.answer(t("ticket.start_private_first"), show_alert=True)
                return False
            context.user_data[PROMPT] = (action, ticket_id)  # type: ignore[index]
            await query.answer(t("ticket.see_private"))
            return False
    except Refused as exc:
        log.info("refused %s on ticket %s by user %s", action, ticket_id, user.id)
        await query.answer(str(exc), show_alert=True)
        return False
    return True


def waiting_note(context: ContextTypes.DEFAULT_TYPE) -> bool:
    return bool(context.user_data and context.user_data.get(PROMPT))


async def on_note(update: Update, context: ContextTypes.DEFAULT_TYPE, factory: sessionmaker[Session]) -> bool:
    """The presser's note for 办结 / 退回; True when the ticket changed."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and context.user_data is not None
    action, ticket_id = context.user_data.pop(PROMPT)
    note = (message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None
    if note in {"取消", "算了", "不办了"}:
        await message.reply_text(t("ticket.note_cancelled"))
        return False
    if not note:
        context.user_data[PROMPT] = (action, ticket_id)
        await message.reply_text(t("ticket.note_needed"))
        return False
    try:
        if action == "resolve":
            await asyncio.to_thread(_run, factory, user.id, workflow.resolve, ticket_id, note, photo)
        else:
            await asyncio.to_thread(_run, factory, user.id, workflow.reject, ticket_id, note)
    except Refused as exc:
        await message.reply_text(str(exc))
        return False
    await message.reply_text(t(f"ticket.{action}_done"))
    return True
