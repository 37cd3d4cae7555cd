"""共享空间 in chat: /yuyue, buttons first.

/yuyue lists the spaces of the person's communities (every space for someone new), 我的预约 and,
for a space's managers, 管理预约. A booking: the space (its card; who may not book it is told
why at once), a day (buttons for the next 7 open days, or typed: 明天, 12月8日, 周五), a free
slot inside the opening hours, the purpose (typed), the number of people (typed; over the
capacity is refused and asked again). Someone who took the slot meanwhile: refused with the next
free slots as buttons, which book with the same purpose and people. A space that needs approval
sends its managers a card with 批准 / 拒绝 (拒绝 asks the reason, which the booker is told).
我的预约 lists the person's bookings with 取消 (refused within the cutoff); 管理预约 the pending
ones and those started in the last two days, with 未到. The draft is the person's open question
(core.messaging.prompts SPACES); every rule is checked in core.spaces.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, answer_press, respond, show, take_answer
from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.models import BookingSource, BookingStatus, Person
from core.people import residents
from core.spaces import access, booking, clock, notices, views
from core.spaces import buttons as b
from core.spaces.booking import Slot, Taken
from core.spaces.rules import Rules

log = logging.getLogger("gridbot.bot.spaces")

SHOWN = 8  # bookings listed with buttons
PEOPLE = re.compile(r"^\s*(\d{1,5})\s*(人|位|个人)?\s*$")


def is_press(data: object) -> bool:
    return b.parse(data) is not None


def takes_text(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.SPACES


def _settings(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"].settings


def _stop() -> list[dict[str, Any]]:
    return [b.button(t("spaces.button_stop"), b.STOP)]


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _at(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), timezone.utc)


def _slot_buttons(what: str, space_id: int, slots: list[Slot], settings: Any, with_day: bool = False) -> Buttons:
    labels = [(views.slot_day_text(s, settings.tz) if with_day else views.slot_text(s, settings.tz), s) for s in slots]
    buttons = [b.button(text, what, space_id, _epoch(s[0]), _epoch(s[1])) for text, s in labels]
    per_row = 1 if with_day else 3
    return [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)] + [_stop()]


def _menu(s: Session, person: Person | None) -> Buttons:
    spaces = access.spaces_for(s, person)
    rows: Buttons = [[b.button(text, b.SPACE, space.id)] for space, text in views.labels(s, spaces)]
    rows.append([b.button(t("spaces.button_mine"), b.MINE)])
    if access.managed(s, person):
        rows[-1].append(b.button(t("spaces.button_manage"), b.MANAGE))
    return rows


async def on_yuyue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        prompts.clear(s, user.id, prompts.SPACES)
        out.send(chat_id, t("spaces.menu"), _menu(s, residents.person_by_telegram(s, user.id)))

    await respond(context, work)


def _ask_slot(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int, space_id: int,
              day: date, settings: Any) -> None:
    """The free slots of `day`, or the days again when there are none."""
    space = booking.space_by_id(s, space_id)
    now = clock.now()
    booking.check_day(space, day, settings.tz, now)
    slots = booking.free_slots(s, space, day, settings.tz, now)
    if not slots:
        _ask_day(s, out, chat_id, message_id, user_id, space_id, settings,
                 t("spaces.no_slots", day=views.day_text(day)))
        return
    prompts.clear(s, user_id, prompts.SPACES)
    show(out, chat_id, message_id, t("spaces.ask_slot", space=space.name, day=views.day_text(day)),
         _slot_buttons(b.SLOT, space.id, slots, settings))


def _ask_day(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int, space_id: int,
             settings: Any, head: str) -> None:
    space = booking.space_by_id(s, space_id)
    days = views.open_days(space, clock.now(), settings.tz)
    buttons = [b.button(views.day_text(d), b.DAY, space.id, d.isoformat()) for d in days]
    prompts.ask(s, user_id, prompts.SPACES, {"step": "day", "space": space.id})
    show(out, chat_id, message_id, head + "\n" + t("spaces.ask_day"),
         [buttons[i:i + 2] for i in range(0, len(buttons), 2)] + [_stop()])


def _book(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int, draft: dict[str, Any],
          settings: Any) -> None:
    """Book the draft's slot; a slot someone took meanwhile: the next free ones as buttons."""
    person = residents.person_by_telegram(s, user_id)
    space_id, start, end = int(draft["space"]), _at(draft["start"]), _at(draft["end"])
    try:
        row = booking.book(s, person, space_id, start=start, end=end, purpose=str(draft["purpose"]),
                           people=int(draft["people"]), source=BookingSource.chat, rules=Rules.of(settings),
                           tz=settings.tz, now=clock.now())
    except Taken as exc:
        prompts.ask(s, user_id, prompts.SPACES, {**draft, "step": "retry"})
        head = str(exc) + "\n" + (t("spaces.pick_other") if exc.alternatives else t("spaces.no_other"))
        show(out, chat_id, message_id, head, _slot_buttons(b.RETRY, space_id, exc.alternatives, settings, True))
        return
    prompts.clear(s, user_id, prompts.SPACES)
    key = "spaces.booked_pending" if row.status is BookingStatus.pending else "spaces.booked"
    show(out, chat_id, message_id, t(key, booking=notices.line(s, row, settings.tz)))


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed step: a day, the purpose, the number of people, a manager's reason."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id, text, settings = message.chat_id, (message.text or "").strip(), _settings(context)
    step, draft = asked.value.get("step"), dict(asked.value)

    def work(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.SPACES, text, needed="spaces.needed",
                           cancelled="spaces.cancelled"):
            return
        try:
            if step == "day":
                day = views.typed_day(text, clock.now(), settings.tz)
                if day is None:
                    prompts.ask(s, user.id, prompts.SPACES, asked.value)
                    out.send(chat_id, t("spaces.day_unknown"))
                    return
                _ask_slot(s, out, chat_id, None, user.id, int(draft["space"]), day, settings)
            elif step == "purpose":
                purpose = booking.clean_purpose(text)
                prompts.ask(s, user.id, prompts.SPACES, {**draft, "step": "people", "purpose": purpose})
                out.send(chat_id, t("spaces.ask_people", capacity=booking.space_by_id(s, int(draft["space"])).capacity))
            elif step == "people":
                match = PEOPLE.match(text)
                if match is None:
                    raise NotAllowed(t("spaces.deny.people"))
                people = booking.check_people(booking.space_by_id(s, int(draft["space"])), int(match.group(1)))
                _book(s, out, chat_id, None, user.id, {**draft, "people": people}, settings)
            elif step == "reason":
                row = booking.decide(s, residents.person_by_telegram(s, user.id), int(draft["booking"]),
                                     approve=False, reason=text, tz=settings.tz, now=clock.now())
                out.send(chat_id, t("spaces.refused", booking=notices.line(s, row, settings.tz)))
            else:  # a buttons-only step
                prompts.ask(s, user.id, prompts.SPACES, asked.value)
                out.send(chat_id, t("spaces.needed"))
        except NotAllowed as exc:
            if step in ("day", "purpose", "people", "reason"):
                prompts.ask(s, user.id, prompts.SPACES, asked.value)  # asked again
            out.send(chat_id, str(exc))

    await respond(context, work)


def _mine(s: Session, person: Person | None, settings: Any) -> tuple[str, Buttons]:
    rows = booking.mine(s, person, clock.now())
    if not rows:
        return t("spaces.mine_none"), []
    lines = [notices.line(s, row, settings.tz) for row in rows]
    buttons = [[b.button(t("spaces.button_cancel", when=views.slot_day_text((row.starts_at, row.ends_at), settings.tz)),
                         b.CANCEL, row.id)] for row in rows[:SHOWN] if row.source is not BookingSource.duty]
    return t("spaces.mine", lines="\n".join(f"· {x}" for x in lines)), buttons


def _manage(s: Session, out: Outgoing, chat_id: int, person: Person | None, settings: Any) -> str | None:
    now = clock.now()
    pending, started = booking.to_decide(s, person, now), booking.started(s, person, now)
    if not pending and not started:
        return t("spaces.manage_none")
    for row in pending[:SHOWN]:
        out.send(chat_id, notices.approval_card(s, row, settings.tz),
                 [[b.button(t("spaces.button_approve"), b.APPROVE, row.id),
                   b.button(t("spaces.button_refuse"), b.REFUSE, row.id)]])
    for row in started[:SHOWN]:
        out.send(chat_id, t("spaces.started", booking=notices.line(s, row, settings.tz),
                            who=notices.booker(s, row)),
                 [[b.button(t("spaces.button_no_show"), b.NO_SHOW, row.id)]])
    return None


def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, what: str,
           values: list[Any], settings: Any) -> str | None:
    person, now, tz = residents.person_by_telegram(s, user_id), clock.now(), settings.tz
    if what == b.STOP:
        prompts.clear(s, user_id, prompts.SPACES)
        show(out, chat_id, message_id, t("spaces.cancelled"))
    elif what == b.SPACE:
        space = booking.space_by_id(s, int(values[0]))
        booking.check_may_book(s, person, space, Rules.of(settings), tz, now)
        _ask_day(s, out, chat_id, message_id, user_id, space.id, settings, views.card(s, space))
    elif what == b.DAY:
        _ask_slot(s, out, chat_id, message_id, user_id, int(values[0]), date.fromisoformat(str(values[1])), settings)
    elif what == b.SLOT:
        space = booking.space_by_id(s, int(values[0]))
        slot = (_at(values[1]), _at(values[2]))
        if booking.overlapping(s, space.id, *slot) is not None or slot[0] <= now:
            other = booking.next_free(s, space, slot[0], slot[1] - slot[0], tz, now)
            show(out, chat_id, message_id, t("spaces.slot_gone") + "\n" + t("spaces.pick_other"),
                 _slot_buttons(b.SLOT, space.id, other, settings, True))
            return None
        prompts.ask(s, user_id, prompts.SPACES, {"step": "purpose", "space": space.id, "start": int(values[1]),
                                                 "end": int(values[2])})
        show(out, chat_id, message_id, t("spaces.ask_purpose", space=space.name, when=views.slot_day_text(slot, tz)))
    elif what == b.RETRY:
        asked = prompts.current(s, user_id)
        if asked is None or asked.kind != prompts.SPACES or asked.value.get("step") != "retry":
            return t("button_invalid")
        _book(s, out, chat_id, message_id, user_id,
              {**asked.value, "space": int(values[0]), "start": int(values[1]), "end": int(values[2])}, settings)
    elif what == b.MINE:
        text, buttons = _mine(s, person, settings)
        out.send(chat_id, text, buttons)
    elif what == b.CANCEL:
        row = booking.cancel(s, person, int(values[0]), rules=Rules.of(settings), now=now)
        text, buttons = _mine(s, person, settings)
        show(out, chat_id, message_id, t("spaces.cancelled_booking", booking=notices.line(s, row, tz)) + "\n\n" + text,
             buttons)
    elif what == b.MANAGE:
        return _manage(s, out, chat_id, person, settings)
    elif what == b.APPROVE:
        row = booking.decide(s, person, int(values[0]), approve=True, tz=tz, now=now)
        show(out, chat_id, message_id, notices.approval_card(s, row, tz) + "\n" + t("spaces.approved"))
    elif what == b.REFUSE:
        row = booking.booking_by_id(s, int(values[0]))
        access.require_manager(s, person, booking.space_by_id(s, row.space_id))
        if row.status is not BookingStatus.pending:
            return t("spaces.deny.decided", status=t(f"spaces.status.{row.status.value}"))
        prompts.ask(s, user_id, prompts.SPACES, {"step": "reason", "booking": row.id})
        out.send(chat_id, t("spaces.ask_reason"))
    elif what == b.NO_SHOW:
        row = booking.record_no_show(s, person, int(values[0]), rules=Rules.of(settings), tz=tz, now=now)
        show(out, chat_id, message_id, t("spaces.no_show_recorded", booking=notices.line(s, row, tz)))
    else:
        return t("button_invalid")
    return None


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: Any) -> None:
    parsed = b.parse(data)
    assert parsed is not None
    what, values = parsed
    settings = _settings(context)
    await answer_press(update, context, lambda s, out, user_id, chat_id, message_id:
                       _press(s, out, user_id, chat_id, message_id, what, values, settings))


def handlers() -> list[BaseHandler]:
    return [CommandHandler("yuyue", on_yuyue, filters=filters.ChatType.PRIVATE)]
