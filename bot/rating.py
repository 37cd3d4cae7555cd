"""The answer to "还有哪里没解决？" after 未解决 (core.tickets.ratings): the resident's next private message
becomes a remark on the reopened ticket, which the handlers see (core.tickets.remarks)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import Outgoing, respond, take_answer
from core.messages import t
from core.messaging import prompts
from core.people import residents
from core.tickets import ratings


async def on_reason(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    text, chat_id, ticket_id = (message.text or "").strip(), message.chat_id, int(asked.value["ticket"])

    def answer(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.REOPEN, text,
                           needed="rating.reason_needed", cancelled="rating.reason_skipped"):
            return
        ratings.still_wrong(s, ticket_id, residents.person_by_telegram(s, user.id), text)
        out.send(chat_id, t("rating.reason_sent"))

    await respond(context, answer)
