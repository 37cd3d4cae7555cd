"""/invite and /join: how a party member joins a branch through chat.

/invite (private chat): a secretary of one branch gets a one-time code for it; a
secretary of several branches picks the branch with buttons. /join CODE makes the
sender a member of the code's branch. Both are decided by core.invites on the
server: the branch button carries only a branch id, and a press is re-checked
(invite.create at that branch) like every other button. Nothing here grants a
secretary, grid worker or admin role.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from core import invites, workflow
from core.config import get_settings
from core.db import session_scope
from core.messages import t
from core.models import Branch
from core.permissions import NotAllowed

log = logging.getLogger("gridbot.bot.roles")

PICK = "invite"  # callback data of a branch button: ("invite", branch id)


class Reply(NamedTuple):
    text: str
    choices: list[tuple[int, str]]  # (branch id, name) to pick from
    created: bool  # a code was made


def _invite(factory: sessionmaker[Session], user_id: int, branch_id: int | None) -> Reply:
    """The reply to /invite (branch_id None) or to a branch button."""
    with session_scope(factory) as s:
        person = workflow.person_by_telegram(s, user_id)
        if person is None:
            return Reply(t("deny.unknown_person"), [], False)
        if branch_id is None:
            branches = invites.inviting_branches(s, person)
            if not branches:
                return Reply(t("invite.not_secretary"), [], False)
            if len(branches) > 1:
                return Reply(t("invite.pick_branch"), [(b.id, b.name) for b in branches], False)
            branch_id = branches[0].id
        try:
            invite = invites.create_invite(s, person, branch_id)
        except NotAllowed as exc:
            log.info("refused an invite for branch %s to user %s", branch_id, user_id)
            return Reply(str(exc), [], False)
        branch = s.get(Branch, branch_id)
        assert branch is not None
        expires = invite.expires_at.astimezone(get_settings().tz).strftime("%m-%d %H:%M")
        return Reply(t("invite.created", branch=branch.name, code=invite.code, expires=expires), [], True)


async def on_invite(update: Update, context: ContextTypes.DEFAULT_TYPE, factory: sessionmaker[Session]) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    reply = await asyncio.to_thread(_invite, factory, user.id, None)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(name, callback_data=(PICK, branch_id))]
                                   for branch_id, name in reply.choices]) if reply.choices else None
    await message.reply_text(reply.text, reply_markup=markup)


def is_pick(data: object) -> bool:
    return isinstance(data, tuple) and len(data) == 2 and data[0] == PICK and isinstance(data[1], int)


async def on_pick(update: Update, context: ContextTypes.DEFAULT_TYPE, factory: sessionmaker[Session]) -> None:
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    if not is_pick(query.data):  # a press without data this handler can read: say so, never ignore
        await query.answer(t("button_invalid"), show_alert=True)
        return
    branch_id = query.data[1]  # type: ignore[index]
    reply = await asyncio.to_thread(_invite, factory, user.id, branch_id)
    if not reply.created:  # refused on the server: say why, keep the message
        await query.answer(reply.text, show_alert=True)
        return
    await query.answer()
    await query.edit_message_text(reply.text)  # the choice is made: the buttons go


def _join(factory: sessionmaker[Session], user_id: int, display_name: str, code: str) -> str:
    with session_scope(factory) as s:
        try:
            branch, _ = invites.redeem(s, user_id, display_name, code)
        except NotAllowed as exc:  # committed all the same: the refusal's audit entry counts
            log.info("refused /join of user %s (%s)", user_id, getattr(exc, "reason", "refused"))
            return str(exc)
        return t("invite.joined", branch=branch.name)


async def on_join(update: Update, context: ContextTypes.DEFAULT_TYPE, factory: sessionmaker[Session]) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    code = "".join(context.args or [])
    if not code:
        await message.reply_text(t("invite.join_usage"))
        return
    text = await asyncio.to_thread(_join, factory, user.id, user.full_name, code)
    await message.reply_text(text)


def handlers(factory: sessionmaker[Session]) -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, to add before the general button handler."""
    private = filters.ChatType.PRIVATE

    async def invite(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await on_invite(update, context, factory)

    async def pick(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await on_pick(update, context, factory)

    async def join(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await on_join(update, context, factory)

    return [CommandHandler("invite", invite, filters=private),
            CommandHandler("join", join, filters=private),
            CallbackQueryHandler(pick, pattern=is_pick)]
