"""/invite and /join: how a party member joins a branch through chat.

/invite (private chat): a secretary of one branch gets a one-time code for it; a
secretary of several branches picks the branch with buttons. /join CODE makes the
sender a member of the code's branch. Both are decided by core.registry.invites on the
server: the branch button carries only a branch id, and a press is re-checked
(invite.create at that branch) like every other button. Nothing here grants a
secretary, grid worker or admin role. When a code is used, the secretary who made it is told
who joined (core.registry.invite_notice).

The community admin's part of /report (the month across the community's branches) is here
too: `on_community_report` (core.duties.community), called by bot/app.py's /report.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.replies import Outgoing, button, respond
from core.access.permissions import NotAllowed
from core.config import get_settings
from core.duties import community
from core.messages import t
from core.people import residents
from core.places import directory
from core.registry import invite_notice, invites

log = logging.getLogger("gridbot.bot.roles")

PICK = "invite"  # data of a branch button: ["invite", branch id] (core.messaging.buttons)


class Reply(NamedTuple):
    text: str
    choices: list[tuple[int, str]]  # (branch id, name) to pick from
    created: bool  # a code was made


def _invite(s: Session, user_id: int, branch_id: int | None) -> Reply:
    """The reply to /invite (branch_id None) or to a branch button."""
    person = residents.person_by_telegram(s, user_id)
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
    branch = directory.branch(s, branch_id)
    expires = invite.expires_at.astimezone(get_settings().tz).strftime("%m-%d %H:%M")
    return Reply(t("invite.created", branch=branch.name, code=invite.code, expires=expires), [], True)


async def on_invite(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        reply = _invite(s, user.id, None)
        out.send(chat_id, reply.text, [[button(name, [PICK, branch_id])] for branch_id, name in reply.choices])

    await respond(context, work)


def is_pick(data: object) -> bool:
    return isinstance(data, list) and len(data) == 2 and data[0] == PICK and isinstance(data[1], int)


async def on_pick(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[int | str]) -> None:
    """A branch button of /invite (`data` as `is_pick` accepts it)."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    branch_id = int(data[1])
    message = query.message

    def work(s: Session, out: Outgoing) -> Reply:
        reply = _invite(s, user.id, branch_id)
        if reply.created:  # the choice is made: the buttons go
            if message is not None:
                out.edit(message.chat.id, message.message_id, reply.text)
            else:
                out.send(user.id, reply.text)
        return reply

    reply, _ = await respond(context, work)
    if not reply.created:  # refused on the server: say why, keep the message
        await query.answer(reply.text, show_alert=True)
        return
    await query.answer()


def _join(s: Session, user_id: int, display_name: str, code: str) -> str:
    try:
        branch, person = invites.redeem(s, user_id, display_name, code, settings=get_settings())
    except NotAllowed as exc:  # committed all the same: the refusal's audit entry counts
        log.info("refused /join of user %s (%s)", user_id, getattr(exc, "reason", "refused"))
        return str(exc)
    invite_notice.tell_inviter(s, code, person, branch)
    return t("invite.joined", branch=branch.name)


async def on_join(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    code = "".join(context.args or [])
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        out.send(chat_id, _join(s, user.id, user.full_name, code) if code else t("invite.join_usage"))

    await respond(context, work)
    await context.application.bot_data["services"].dispatch()  # the secretary's notice


async def on_community_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report by a community admin: the month's attendance across the community's branches
    (nothing for anyone else: their /report is the branch's, bot/duties_buttons.py)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    tz = get_settings().tz

    def work(s: Session, out: Outgoing) -> None:
        text = community.community_text(s, residents.person_by_telegram(s, user.id), tz=tz)
        if text:
            out.send(chat_id, text)

    await respond(context, work)


def handlers() -> list[BaseHandler]:
    """The commands of this module (their buttons are routed by bot/app.py's on_callback)."""
    private = filters.ChatType.PRIVATE
    return [CommandHandler("invite", on_invite, filters=private),
            CommandHandler("join", on_join, filters=private)]
