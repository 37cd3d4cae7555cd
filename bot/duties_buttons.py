"""Duty buttons (参加 请假 签到 不再提醒 / 报名 取消报名 找人替班 我来接班), /duties and /report.

Button data is core.duties.service' "ev:<y|n|c|m>:<id>" / "sh:<s|x|w|t>:<id>", kept under the
button's token like the ticket buttons' (core.messaging.buttons): data the bot never issued is refused
before this module sees it. Every press is re-checked by core.duties.service as the person behind the
pressing Telegram user; a refusal is shown as an alert with its reason. 请假 needs a reason:
the presser is asked in their private chat (a prompt, core.messaging.prompts, committed with the
question) and their next private text is the reason, also after a restart (like the 办结 note
of bot/ticket_buttons.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import ContextTypes

from bot import study_chat
from bot.replies import Outgoing, respond, take_answer
from core.access import permissions
from core.access.permissions import NotAllowed
from core.db import session_scope
from core.duties import attendance, common, overview, reports, shifts, words
from core.messages import t
from core.messaging import outbox, prompts
from core.models import Person, utcnow
from core.people import residents
from core.presentation import callbacks
from core.presentation.callbacks import DutyPress
from core.study import catchup

log = logging.getLogger("gridbot.bot.duties")



class Refused(Exception):
    pass


def parse(data: str) -> DutyPress | None:
    return callbacks.parse_duty(data)


def as_person(s: Session, user_id: int, fn: Callable[..., Any], ref_id: int, *args: Any, **kwargs: Any) -> Any:
    """Call a duties function as the person behind `user_id`; Refused says why not."""
    person = residents.person_by_telegram(s, user_id)
    if person is None:
        raise Refused(t("duty.deny.unknown_person"))
    try:
        return fn(s, ref_id, person, *args, **kwargs)
    except NotAllowed as exc:
        raise Refused(str(exc)) from exc


def _run(factory: sessionmaker[Session], user_id: int, fn: Callable[..., Any], ref_id: int, *args: Any,
         **kwargs: Any) -> Any:
    """`as_person` in a transaction of its own."""
    with session_scope(factory) as s:
        return as_person(s, user_id, fn, ref_id, *args, **kwargs)


def _occurrence_label(s: Session, occurrence_id: int, person: Person) -> dict[str, str]:
    occ = attendance.check_rsvp(s, occurrence_id, person)
    return {"title": occ.event.title, "when": common.fmt_at(occ.starts_at, ZoneInfo(occ.event.tz))}


def _rsvp(s: Session, occurrence_id: int, person: Person, attending: bool, reason: str | None = None) -> None:
    attendance.rsvp(s, occurrence_id, person, attending, reason)


def _check_in(s: Session, occurrence_id: int, person: Person) -> None:
    attendance.check_in(s, occurrence_id, person)


def _mute(s: Session, event_id: int, person: Person) -> None:
    attendance.mute_reminders(s, event_id, person, True)


# (function of (session, id, person, tz), toast, whether it may queue messages)
SIMPLE: dict[tuple[str, str], tuple[Callable[..., Any], str, bool]] = {
    ("ev", "y"): (lambda s, i, p, tz: _rsvp(s, i, p, True), "duty.bot.attend_done", False),
    ("ev", "c"): (lambda s, i, p, tz: _check_in(s, i, p), "duty.bot.checkin_done", False),
    ("ev", "m"): (lambda s, i, p, tz: _mute(s, i, p), "duty.bot.muted", False),
    ("sh", "s"): (lambda s, i, p, tz: shifts.sign_up(s, i, p), "duty.bot.signup_done", False),
    ("sh", "x"): (lambda s, i, p, tz: shifts.cancel_signup(s, i, p, tz=tz), "duty.bot.signup_cancelled", False),
    ("sh", "w"): (lambda s, i, p, tz: shifts.request_swap(s, i, p, tz=tz), "duty.bot.swap_requested", True),
    ("sh", "t"): (lambda s, i, p, tz: shifts.take_swap(s, i, p, tz=tz), "duty.bot.swap_taken", True),
}


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, cb: DutyPress,
                   factory: sessionmaker[Session], tz: ZoneInfo) -> bool:
    """Handle a duty button; True when something was queued for sending."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    try:
        if (cb.scope, cb.action) == ("ev", "n"):  # 请假: check now, ask for the reason in private
            def ask(s: Session, out: Outgoing) -> str:
                label = as_person(s, user.id, _occurrence_label, cb.id)
                prompts.ask(s, user.id, prompts.LEAVE, {"occurrence": cb.id})  # the newest question wins
                return out.send(user.id, t("duty.bot.ask_reason", **label))

            key, delivery = await respond(context, ask)
            if delivery.failed(key):  # the presser never opened a private chat with the bot
                await asyncio.to_thread(_forget, factory, user.id)
                await query.answer(t("ticket.start_private_first"), show_alert=True)
                return False
            await query.answer(t("duty.bot.see_private"))
            return False
        fn, toast, queues = SIMPLE[(cb.scope, cb.action)]
        await asyncio.to_thread(_run, factory, user.id, fn, cb.id, tz)
    except Refused as exc:
        log.info("refused duty %s:%s:%s by user %s", cb.scope, cb.action, cb.id, user.id)
        await query.answer(str(exc), show_alert=True)
        return False
    await query.answer(t(toast))
    return queues


def _forget(factory: sessionmaker[Session], user_id: int) -> None:
    with session_scope(factory) as s:
        prompts.clear(s, user_id, prompts.LEAVE)


async def on_reason(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    """The presser's reason for 请假 (the open prompt `asked`)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    occurrence_id = int(asked.value["occurrence"])
    reason = (message.text or message.caption or "").strip()
    chat_id = message.chat_id

    def leave(s: Session, occ_id: int, person: Person) -> dict[str, str]:
        label = _occurrence_label(s, occ_id, person)
        attendance.rsvp(s, occ_id, person, False, reason)
        return label

    def answer(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.LEAVE, reason,
                           needed="duty.bot.reason_needed", cancelled="duty.bot.reason_cancelled"):
            return
        try:
            label = as_person(s, user.id, leave, occurrence_id)
        except Refused as exc:
            out.send(chat_id, str(exc))
            return
        out.send(chat_id, t("duty.bot.leave_done", **label))

    await respond(context, answer)


# -- commands --------------------------------------------------------------------------

def duties_message(factory: sessionmaker[Session], user_id: int, chat_id: int, message_id: int, tz: ZoneInfo) -> None:
    """Queue "my duties" (or why not) for the sender of /duties."""
    with session_scope(factory) as s:
        person = residents.person_by_telegram(s, user_id)
        payload = words.extend_payload(s, person, overview.duties_payload(s, person, tz=tz), tz=tz) \
            if person is not None else {"text": t("duty.deny.unknown_person")}
        outbox.enqueue(s, dedupe_key=f"duties:{chat_id}:{message_id}", kind="reply", chat_id=chat_id,
                       payload=payload)


def report_message(factory: sessionmaker[Session], user_id: int, chat_id: int, message_id: int, tz: ZoneInfo) -> None:
    """Queue, for a secretary or community admin, the attendance of their branch's next/last meeting
    (出席 and 补学 apart), this month's summary and who has had neither for 30 days; a 资料 button
    per meeting for whoever adds its study materials (bot/study_chat.py)."""
    with session_scope(factory) as s:
        person = residents.person_by_telegram(s, user_id)
        branches = permissions.branches_for(s, person, "event.report")  # a secretary, a community admin
        parts: list[str] = []
        attach: list[list[dict[str, Any]]] = []
        now = utcnow()
        for branch in branches:
            occ = reports.occurrence_to_report(s, branch.id, now)
            parts.append(reports.event_report_text(reports.event_report(s, occ.id, person, now=now)) if occ is not None
                         else t("duty.bot.report_no_event", branch=branch.name))
            today = now.astimezone(tz)
            parts.append(reports.monthly_summary_text(
                reports.monthly_summary(s, branch.id, today.year, today.month, person, now=now, tz=tz), tz))
            parts.append(catchup.overdue_text(s, branch.name, branch.id, now))
            if occ is not None and permissions.allowed(s, person, "study.manage", permissions.scope_of_branch(s, branch)):
                attach.append([study_chat.attach_button(occ.id, branch.id, occ.event.title)])
        text = "\n\n".join(parts) or t("duty.bot.report_not_secretary")
        outbox.enqueue(s, dedupe_key=f"report:{chat_id}:{message_id}", kind="reply", chat_id=chat_id,
                       payload={"text": text, **({"buttons": attach} if attach else {})})
