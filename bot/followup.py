"""After filing: the reporter's changes to a ticket, her phone, and callback requests.

- Buttons the actions (actions/followup.py) offer on the reporter's own tickets, data in the
  database like every button: "rc:w:<id>" 撤回, "rc:c:<id>" 改类别 (shows the categories),
  "rc:c:<id>:<code>" the new category, "rc:s:<id>" 补充 (asks for the text or photo: a prompt,
  core.messaging.prompts.SUPPLEMENT, whose answer is her next private message, also after a restart).
  Every press goes through core.tickets.changes, which checks afresh who may change what.
- The phone: after 同意 at /start (bot/binding.py) and when a callback request finds no phone,
  the bot asks with Telegram's share-contact button (prompt core.messaging.prompts.PHONE). Her own
  contact (user id = sender) is stored (core.people.phones); someone else's card is not.
- The callback request's card (core.people.callbacks): "cb:contact:<id>" shows the phone as an alert
  only the presser sees (audited), "cb:done:<id>" marks it 已回电 and the card says so.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import Outgoing, respond, take_answer
from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import prompts
from core.people import callbacks, phones, residents
from core.presentation import cards
from core.tickets import changes

log = logging.getLogger("gridbot.bot.followup")
PROMPTS = frozenset({prompts.SUPPLEMENT, prompts.PHONE})


def _parse(data: str) -> tuple[str, int, str | None] | None:
    parts = data.split(":")
    if len(parts) in (3, 4) and parts[0] == "rc" and parts[1] in ("w", "c", "s") and parts[2].isdigit():
        if len(parts) == 4 and parts[1] != "c":
            return None
        return parts[1], int(parts[2]), parts[3] if len(parts) == 4 else None
    return None


def is_press(data: Any) -> bool:
    return isinstance(data, str) and (_parse(data) is not None or callbacks.parse(data) is not None)


def ask_phone(out: Outgoing, s: Session, user_id: int, chat_id: int) -> None:
    """The share-contact question (its reply keyboard), open as a prompt."""
    prompts.ask(s, user_id, prompts.PHONE, {})
    out.send_with(chat_id, t("phone.ask"), **phones.keyboard())


def _category_buttons(ticket_id: int, choices: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    buttons = [{"text": name, "callback_data": f"rc:c:{ticket_id}:{code}"} for code, name in choices]
    return [buttons[i:i + 3] for i in range(0, len(buttons), 3)]


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: str, tz: ZoneInfo) -> None:
    """A press on one of this module's buttons (is_press(data) is true)."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    chat_id = query.message.chat.id if query.message is not None else user.id
    message_id = query.message.message_id if query.message is not None else None
    parsed, request = _parse(data), callbacks.parse(data)

    def work(s: Session, out: Outgoing) -> tuple[str | None, bool]:
        """(the answer to the press, shown as an alert?)"""
        person = residents.person_by_telegram(s, user.id)
        try:
            if request is not None:
                action, request_id = request
                if action == "contact":
                    return callbacks.contact(s, request_id, person), True
                row = callbacks.mark_done(s, request_id, person)
                if message_id is not None:
                    card = callbacks.card_payload(s, row, tz=tz)
                    assert person is not None
                    out.edit(chat_id, message_id, card["text"] + "\n" + t(
                        "callback.done_line", id=row.id, handler=residents.first_name(person)))
                return t("callback.done_toast"), False
            assert parsed is not None
            what, ticket_id, code = parsed
            if what == "w":
                ticket = changes.withdraw(s, ticket_id, person)
                _finish(out, chat_id, message_id, t("change.withdrawn", number=ticket.number))
            elif what == "c" and code is None:
                ticket = changes.own(s, ticket_id, person)
                out.send(chat_id, t("change.pick_new_category", number=ticket.number, category=ticket.category.name),
                         _category_buttons(ticket.id, changes.other_categories(s, ticket)))
                _finish(out, chat_id, message_id, None)
            elif what == "c":
                assert code is not None
                event = changes.recategorise(s, ticket_id, person, code, tz=tz)
                changed = event.ticket
                _finish(out, chat_id, message_id, t("change.recategorised", number=changed.number,
                                                    category=changed.category.name,
                                                    resolve=_days(changed.category.resolve_minutes)))
            else:
                ticket = changes.own(s, ticket_id, person)
                prompts.ask(s, user.id, prompts.SUPPLEMENT, {"ticket": ticket.id})
                out.send(chat_id, t("change.ask_supplement", number=ticket.number))
                _finish(out, chat_id, message_id, None)
        except NotAllowed as exc:
            return str(exc), True
        return None, False

    (answer, alert), _ = await respond(context, work)
    await query.answer(answer, show_alert=alert)


def _finish(out: Outgoing, chat_id: int, message_id: int | None, text: str | None) -> None:
    """One press per question: the list's buttons go; the outcome, if any, is a new message."""
    if message_id is not None:
        out.markup(chat_id, message_id)
    if text:
        out.send(chat_id, text)


def _days(minutes: int) -> str:
    return t("time.days", n=minutes // 1440) if minutes % 1440 == 0 else t("time.hours", n=max(1, minutes // 60))


async def on_prompt(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> bool:
    """A private message (text or photo) while a SUPPLEMENT or PHONE question is open; False when
    it is not an answer and goes on as any message would."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id
    text = (message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None

    if asked.kind == prompts.SUPPLEMENT:
        ticket_id = int(asked.value["ticket"])

        def add(s: Session, out: Outgoing) -> None:
            if not photo and not take_answer(s, out, chat_id, user.id, prompts.SUPPLEMENT, text,
                                             needed="change.supplement_empty", cancelled="change.supplement_cancelled"):
                return
            prompts.clear(s, user.id, prompts.SUPPLEMENT)
            try:
                event = changes.supplement(s, ticket_id, residents.person_by_telegram(s, user.id), text, photo)
            except NotAllowed as exc:
                out.send(chat_id, str(exc))
                return
            ticket = event.ticket
            out.send(chat_id, t("change.supplemented", number=ticket.number, status=cards.status_name(ticket.status)))

        await respond(context, add)
        return True

    # PHONE: the skip button, a typed number, or something else entirely
    if photo is not None:
        return False
    number = phones.typed(text) if text else None

    def answer(s: Session, out: Outgoing) -> bool:
        if text == t("phone.button_skip") or text in prompts.CANCEL_WORDS:
            prompts.clear(s, user.id, prompts.PHONE)
            out.send_with(chat_id, t("phone.skipped"), remove_keyboard=True)
            return True
        if number is not None:
            prompts.clear(s, user.id, prompts.PHONE)
            phones.store(s, user.id, user.full_name, number)
            out.send_with(chat_id, t("phone.saved", masked=cards.mask_phone(number)), remove_keyboard=True)
            return True
        prompts.clear(s, user.id, prompts.PHONE)  # words: the question is over, the words go on
        return False

    taken, _ = await respond(context, answer)
    return taken


async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A contact sent in private: her own (the share-contact button) is kept as her phone."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.contact is None:
        return
    contact = message.contact
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        if contact.user_id != user.id:  # someone's card: not hers (the share-contact button sends her own)
            asked = prompts.current(s, user.id)
            out.send(chat_id, t("phone.not_own" if asked is not None and asked.kind == prompts.PHONE else "kind.contact"))
            return
        person = phones.store(s, user.id, user.full_name, contact.phone_number)
        if person is None:
            out.send(chat_id, t("phone.invalid"))
            return
        prompts.clear(s, user.id, prompts.PHONE)
        out.send_with(chat_id, t("phone.saved", masked=cards.mask_phone(person.phone)), remove_keyboard=True)

    await respond(context, work)
