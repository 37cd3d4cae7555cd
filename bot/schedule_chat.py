"""/schedule: a secretary schedules a study session or a volunteer shift in chat, and changes or
calls off what is scheduled.

Like /broadcast (bot/broadcast_chat.py) it is a state machine whose state is the sender's prompt
(core.messaging.prompts, kind "schedule": the step and the draft), written in the transaction that queues
each question, so it survives a restart and any bot process takes the next step; Rasa is not
involved:

    kind (buttons) -> title -> place -> time in words ("每月第一个周五晚上7点", "12月6日 7:00";
    an unsure reading is shown for confirmation) -> sessions: repeat ("每季度一次" or a button)
    -> check-in window -> mandatory?   shifts: places -> cancel cutoff
    -> preview -> 确认发布 | 取消

确认发布 schedules through core.duties.plan / core.duties, which tells the members (with
参加/请假 or 报名 buttons); the scheduler picks the reminders of the new occurrences up at its
next sync. "管理已安排" lists what is coming with 改时间 (sessions) and 取消: core.duties tells
everyone expected (and so everyone who had answered) of the change.

A step's buttons carry ["sch", step, value] under a token (core.buttons); a press for another
step than the open one is refused like any unknown button.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, button, respond
from core import schedule_words
from core.access import permissions
from core.access.permissions import NotAllowed
from core.config import get_settings
from core.duties import common, events, shifts
from core.duties import plan as schedule_plan
from core.duties.plan import KIND_NAMES, SHIFT, PlanError, Resolved
from core.messages import t
from core.messaging import prompts
from core.models import Person, Shift, utcnow
from core.people import residents
from core.schedule_words import Reading, parse_repeat, parse_schedule

TAG = "sch"
TYPED_STEPS = {"title", "place", "when", "repeat", "places", "edit_when"}
PRESS_STEPS = {"kind": "kind", "title": "title", "sure": "sure", "repeat": "repeat", "checkin": "checkin",
               "mandatory": "mandatory", "cutoff": "cutoff", "confirm": "confirm", "manage": "kind",
               "cancel_ev": "manage", "cancel_sh": "manage", "edit_ev": "manage"}
CHECKIN_CHOICES = ((30, 60), (15, 30), (60, 120))
CUTOFF_HOURS = (24, 12, 2)


def _buttons(*rows: list[tuple[str, list[Any]]]) -> Buttons:
    return [[button(text, [TAG, *data]) for text, data in row] for row in rows]


def _cancel_row() -> list[tuple[str, list[Any]]]:
    return [(t("schedule.button_cancel"), ["cancel"])]


def is_press(data: Any) -> bool:
    return isinstance(data, list) and len(data) >= 2 and data[0] == TAG


def typed_step(asked: prompts.Asked | None) -> bool:
    """Whether the open prompt waits for a typed answer of /schedule."""
    return asked is not None and asked.kind == prompts.SCHEDULE and asked.value.get("step") in TYPED_STEPS


def _tz() -> Any:
    return get_settings().tz


def _person(s: Session, user_id: int) -> Person | None:
    return residents.person_by_telegram(s, user_id)


def _step(s: Session, user_id: int, draft: dict[str, Any], step: str) -> None:
    prompts.ask(s, user_id, prompts.SCHEDULE, {**draft, "step": step})


def _reading(draft: dict[str, Any]) -> Reading:
    end = datetime.fromisoformat(draft["end"]) if draft.get("end") else None
    return Reading(datetime.fromisoformat(draft["at"]), end, draft.get("rule"), draft.get("sure", True))


def _resolved(draft: dict[str, Any]) -> Resolved:
    reading = _reading(draft)
    kind = draft["kind"]
    ends = reading.end or (reading.at + timedelta(hours=schedule_plan.DEFAULT_SHIFT_HOURS)
                           if kind == SHIFT else None)
    return Resolved(kind, draft["title"], draft["place"], reading.at, ends, reading.rule, True,
                    checkin=tuple(draft.get("checkin") or schedule_plan.DEFAULT_CHECKIN),
                    mandatory=draft.get("mandatory"), capacity=draft.get("places"),
                    cutoff_minutes=int(draft.get("cutoff", schedule_plan.DEFAULT_CUTOFF_HOURS * 60)))


# -- the steps -------------------------------------------------------------------------------------

def _ask_kind(s: Session, out: Outgoing, chat_id: int, user_id: int, branch_id: int) -> None:
    names = list(KIND_NAMES.items())
    rows = [[(name, ["kind", code]) for code, name in names[i:i + 2]] for i in range(0, len(names), 2)]
    rows.append([(t("schedule.button_manage"), ["manage"])])
    rows.append(_cancel_row())
    _step(s, user_id, {"branch": branch_id}, "kind")
    out.send(chat_id, t("schedule.ask_kind"), _buttons(*rows))


def _ask_when(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    _step(s, user_id, draft, "when")
    out.send(chat_id, t("schedule.ask_when_shift" if draft["kind"] == SHIFT else "schedule.ask_when"))


def _after_when(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    """The time is settled: what comes next for this kind."""
    if draft["kind"] == SHIFT:
        _step(s, user_id, draft, "places")
        out.send(chat_id, t("schedule.ask_places"))
    elif draft.get("rule"):
        _ask_checkin(s, out, chat_id, user_id, draft)
    else:
        _step(s, user_id, draft, "repeat")
        out.send(chat_id, t("schedule.ask_repeat"), _buttons(
            [(t("schedule.button_once"), ["repeat", "once"]),
             (t("schedule.button_monthly"), ["repeat", "每月一次"]),
             (t("schedule.button_quarterly"), ["repeat", "每季度一次"])], _cancel_row()))


def _ask_checkin(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    _step(s, user_id, draft, "checkin")
    out.send(chat_id, t("schedule.ask_checkin"), _buttons(
        *[[(t("schedule.button_checkin", before=b, after=a), ["checkin", i])] for i, (b, a) in
          enumerate(CHECKIN_CHOICES)], _cancel_row()))


def _preview(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    _step(s, user_id, draft, "confirm")
    out.send(chat_id, schedule_plan.preview(_resolved(draft), _tz()), _buttons(
        [(t("schedule.button_confirm"), ["confirm"])], _cancel_row()))


def _take_when(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any], text: str,
               now: datetime) -> None:
    reading = parse_schedule(text, now, _tz())
    if reading is None:
        out.send(chat_id, t("schedule.bad_when"))
        return
    if reading.rule is not None and draft["kind"] == SHIFT:
        out.send(chat_id, t("schedule.deny.shift_repeat"))
        return
    if draft["kind"] == SHIFT and reading.end is None:  # a shift said by its start: DEFAULT_SHIFT_HOURS long
        reading = replace(reading, end=reading.at + timedelta(hours=schedule_plan.DEFAULT_SHIFT_HOURS))
    draft = {**draft, "at": reading.at.isoformat(), "end": reading.end.isoformat() if reading.end else None,
             "rule": reading.rule, "sure": reading.sure}
    if not reading.sure:
        _step(s, user_id, draft, "sure")
        out.send(chat_id, t("schedule.confirm_when", when=reading.says(_tz())), _buttons(
            [(t("schedule.button_yes"), ["sure", True]), (t("schedule.button_again"), ["sure", False])],
            _cancel_row()))
        return
    out.send(chat_id, t("schedule.read_when", when=reading.says(_tz())))
    _after_when(s, out, chat_id, user_id, draft)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedule: a new draft (an unfinished one is dropped)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        branches = permissions.branches_for(s, _person(s, user.id), "event.manage")
        if not branches:
            out.send(chat_id, t("schedule.not_manager"))
            return
        _ask_kind(s, out, chat_id, user.id, branches[0].id)

    await respond(context, work)


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    """The answer to the open typed step (`typed_step(asked)`)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id, text = message.chat_id, (message.text or "").strip()
    draft, step = dict(asked.value), asked.value.get("step")
    now = utcnow()

    def work(s: Session, out: Outgoing) -> None:
        if text in prompts.CANCEL_WORDS:
            prompts.clear(s, user.id, prompts.SCHEDULE)
            out.send(chat_id, t("schedule.cancelled"))
            return
        if not text:
            out.send(chat_id, t("schedule.need_text"))
            return
        if step == "title":
            draft["title"] = text[:100]
            _step(s, user.id, draft, "place")
            out.send(chat_id, t("schedule.ask_place"))
        elif step == "place":
            draft["place"] = text[:100]
            _ask_when(s, out, chat_id, user.id, draft)
        elif step == "when":
            _take_when(s, out, chat_id, user.id, draft, text, now)
        elif step == "repeat":
            rule = parse_repeat(text, datetime.fromisoformat(draft["at"]), _tz())
            if rule is None:
                out.send(chat_id, t("schedule.bad_repeat"))
                return
            draft["rule"] = rule
            out.send(chat_id, t("schedule.read_when", when=_reading(draft).says(_tz())))
            _ask_checkin(s, out, chat_id, user.id, draft)
        elif step == "places":
            if not text.isdigit() or not 1 <= int(text) <= 500:
                out.send(chat_id, t("schedule.bad_places"))
                return
            draft["places"] = int(text)
            _step(s, user.id, draft, "cutoff")
            out.send(chat_id, t("schedule.ask_cutoff"), _buttons(
                *[[(t("schedule.button_cutoff", hours=h), ["cutoff", h])] for h in CUTOFF_HOURS], _cancel_row()))
        elif step == "edit_when":
            _edit_when(s, out, chat_id, user.id, draft, text, now)

    await respond(context, work)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    """A button of /schedule (`is_press(data)`): the open step's, or 取消."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    action, value = data[1], (data[2] if len(data) > 2 else None)
    chat_id = query.message.chat.id if query.message is not None else user.id
    message_id = query.message.message_id if query.message is not None else None

    def done_with_buttons(out: Outgoing) -> None:
        if message_id is not None:
            out.markup(chat_id, message_id)

    def work(s: Session, out: Outgoing) -> bool:
        asked = prompts.current(s, user.id)
        if asked is None or asked.kind != prompts.SCHEDULE:
            return False
        draft = dict(asked.value)
        if action == "cancel":
            prompts.clear(s, user.id, prompts.SCHEDULE)
            done_with_buttons(out)
            out.send(chat_id, t("schedule.cancelled"))
            return True
        if PRESS_STEPS.get(str(action)) != draft.get("step"):
            return False
        done_with_buttons(out)
        if action == "kind":
            draft["kind"] = str(value)
            _step(s, user.id, draft, "title")
            out.send(chat_id, t("schedule.ask_title", kind=KIND_NAMES[draft["kind"]]), _buttons(
                [(t("schedule.button_title", title=KIND_NAMES[draft["kind"]]), ["title", KIND_NAMES[draft["kind"]]])],
                _cancel_row()))
        elif action == "title":
            draft["title"] = str(value)
            _step(s, user.id, draft, "place")
            out.send(chat_id, t("schedule.ask_place"))
        elif action == "sure":
            if value:
                _after_when(s, out, chat_id, user.id, draft)
            else:
                _ask_when(s, out, chat_id, user.id, draft)
        elif action == "repeat":
            if value != "once":
                draft["rule"] = parse_repeat(str(value), datetime.fromisoformat(draft["at"]), _tz())
            out.send(chat_id, t("schedule.read_when", when=_reading(draft).says(_tz())))
            _ask_checkin(s, out, chat_id, user.id, draft)
        elif action == "checkin":
            draft["checkin"] = list(CHECKIN_CHOICES[int(str(value))])
            _step(s, user.id, draft, "mandatory")
            out.send(chat_id, t("schedule.ask_mandatory"), _buttons(
                [(t("schedule.mandatory_yes"), ["mandatory", True]), (t("schedule.mandatory_no"), ["mandatory", False])],
                _cancel_row()))
        elif action == "mandatory":
            draft["mandatory"] = bool(value)
            _preview(s, out, chat_id, user.id, draft)
        elif action == "cutoff":
            draft["cutoff"] = int(str(value)) * 60
            _preview(s, out, chat_id, user.id, draft)
        elif action == "confirm":
            _confirm(s, out, chat_id, user.id, draft)
        elif action == "manage":
            _manage(s, out, chat_id, user.id, draft)
        elif action in ("cancel_ev", "cancel_sh"):
            _call_off(s, out, chat_id, user.id, str(action), int(str(value)))
        elif action == "edit_ev":
            draft["event"] = int(str(value))
            _step(s, user.id, draft, "edit_when")
            out.send(chat_id, t("schedule.ask_edit_when"))
        return True

    taken, _ = await respond(context, work)
    if not taken:
        await query.answer(t("button_invalid"), show_alert=True)
        return
    await query.answer()
    await context.application.bot_data["services"].dispatch()  # the members' notices, now


def _confirm(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    prompts.clear(s, user_id, prompts.SCHEDULE)
    person = _person(s, user_id)
    resolved = _resolved(draft)
    try:
        if person is None:
            raise NotAllowed(t("duty.deny.unknown_person"))
        made = schedule_plan.create(s, person, int(draft["branch"]), resolved, tz=_tz())
    except (NotAllowed, PlanError) as exc:
        out.send(chat_id, str(exc))
        return
    if isinstance(made, Shift):
        told = len(shifts.eligible_for_shift(s, made))
    else:
        told = len(events.event_attendees(s, made))
    out.send(chat_id, t("schedule.done", title=resolved.title, when=schedule_plan.when_text(resolved, _tz()),
                        count=told))


# -- what is scheduled: change the time, call off ------------------------------------------------

def _manage(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    tz = _tz()
    rows: list[list[tuple[str, list[Any]]]] = []
    lines = [t("schedule.manage_header")]
    for n, item in enumerate(schedule_plan.coming(s, int(draft["branch"]), utcnow()), 1):
        lines.append(t("schedule.manage_line", n=n, when=common.fmt_at(item.next_at, tz), title=item.title))
        if item.kind == "event":
            rows.append([(t("schedule.button_edit", n=n), ["edit_ev", item.id]),
                         (t("schedule.button_call_off", n=n), ["cancel_ev", item.id])])
        else:
            rows.append([(t("schedule.button_call_off", n=n), ["cancel_sh", item.id])])
    if not rows:
        prompts.clear(s, user_id, prompts.SCHEDULE)
        out.send(chat_id, t("schedule.manage_none"))
        return
    rows.append(_cancel_row())
    _step(s, user_id, draft, "manage")
    out.send(chat_id, "\n".join(lines[:41]), _buttons(*rows[:40]))


def _call_off(s: Session, out: Outgoing, chat_id: int, user_id: int, action: str, ref: int) -> None:
    prompts.clear(s, user_id, prompts.SCHEDULE)
    person = _person(s, user_id)
    try:
        if action == "cancel_ev":
            title = events.cancel_event(s, ref, person).title
        else:
            title = shifts.cancel_shift(s, ref, person, tz=_tz()).title
    except NotAllowed as exc:
        out.send(chat_id, str(exc))
        return
    out.send(chat_id, t("schedule.called_off", title=title))


def _edit_when(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any], text: str,
               now: datetime) -> None:
    reading = parse_schedule(text, now, _tz())
    if reading is None:
        out.send(chat_id, t("schedule.bad_when"))
        return
    try:
        event = events.event_by_id(s, int(draft["event"]))
        changes: dict[str, Any] = {"starts_at": reading.at}
        if reading.rule is not None or event.rrule is None:
            changes["rrule"] = reading.rule  # a series said with a one-off time keeps its rule
        events.update_event(s, event.id, _person(s, user_id), **changes)
    except NotAllowed as exc:
        out.send(chat_id, str(exc))
        return
    prompts.clear(s, user_id, prompts.SCHEDULE)
    out.send(chat_id, t("schedule.changed", title=event.title, when=reading.says(_tz())))


def register(app: Application) -> None:
    """/schedule (its answers and buttons are routed by bot/app.py). jionlp is loaded now, not on
    the first typed time (it takes a second or two)."""
    schedule_words.warm_up()
    app.add_handler(CommandHandler("schedule", start, filters=filters.ChatType.PRIVATE))
