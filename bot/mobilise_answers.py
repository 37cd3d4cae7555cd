"""战时 mobilisation in chat, the called people's side: the answer to the call (到 / 稍后到 with
an ETA / 不能到), 到岗签到 with a shared location checked against the grid, 离开, and the tasks
(领取, 完成). Presses arrive through bot/mobilise_chat.py's one press handler; a typed ETA and the
location are answers to the person's open question (core.messaging.prompts MOBILISE, steps "eta"
and "location"). Every press is checked on the server (core.mobilise): someone not called, an
incident closed, a task of another grid, a location outside the grid are refused with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import Buttons, Outgoing, respond, take_answer
from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.mobilise import answers, area, checkins, clock, declare, roll, tasks
from core.mobilise import buttons as mb
from core.models import Answer, Grid, IncidentCall
from core.people import residents
from core.places.router import Router

log = logging.getLogger("gridbot.bot.mobilise")

TYPED_STEPS = {"eta", "location"}


def _call_message(s: Session, call: IncidentCall, tz: Any, extra: str = "") -> tuple[str, Buttons]:
    """The call as it reads once answered: the call, the answer and what to do, the buttons."""
    incident = area.find(s, call.incident_id)
    text = declare.call_text(s, incident, tz) + "\n\n" + (extra or answers.told(s, incident, call, tz))
    return text, answers.call_buttons(s, call)


def _grid_tasks(s: Session, out: Outgoing, chat_id: int, call: IncidentCall) -> None:
    """After 到 / 稍后到: the open tasks of the person's grid, each with 领取."""
    if call.answer not in (Answer.coming, Answer.late):
        return
    open_tasks = tasks.open_in_grid(s, call.incident_id, call.grid_id)
    if open_tasks:
        lines = [t("mobilise.grid_tasks"), *(roll.task_line(s, task) for task in open_tasks)]
        out.send(chat_id, "\n".join(lines), [[mb.button(f"{t('mobilise.button_take')} #{task.id}", mb.TAKE, task.id)]
                                             for task in open_tasks])


def _answered(s: Session, out: Outgoing, chat_id: int, message_id: int | None, call: IncidentCall, tz: Any) -> None:
    text, rows = _call_message(s, call, tz)
    if message_id is not None:
        out.edit(chat_id, message_id, text, rows)
    else:
        out.send(chat_id, text, rows)
    _grid_tasks(s, out, chat_id, call)


def press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, what: str,
          values: list[Any], tz: Any) -> str | None:
    """A called person's press; the alert to show (a refusal), or None."""
    person = residents.person_by_telegram(s, user_id)
    now = clock.now()
    if what == mb.ANSWER and len(values) == 2 and values[1] in {a.value for a in Answer}:
        incident_id, given = int(values[0]), Answer(values[1])
        call = answers.answer(s, person, incident_id, given, now=now, tz=tz)
        if given is Answer.late:  # the ETA next: buttons, or typed
            prompts.ask(s, user_id, prompts.MOBILISE, {"step": "eta", "incident": incident_id, "message": message_id})
            text, _ = _call_message(s, call, tz, t("mobilise.ask_eta"))
            rows = answers.eta_buttons(incident_id)
            if message_id is not None:
                out.edit(chat_id, message_id, text, rows)
            else:
                out.send(chat_id, text, rows)
            return None
        _answered(s, out, chat_id, message_id, call, tz)
    elif what == mb.ETA and len(values) == 2:
        call = answers.answer(s, person, int(values[0]), Answer.late, eta_minutes=int(values[1]), now=now, tz=tz)
        prompts.clear(s, user_id, prompts.MOBILISE)
        _answered(s, out, chat_id, message_id, call, tz)
    elif what == mb.CHECK_IN and values:
        incident = area.open_incident(s, int(values[0]))
        answers.call_of(s, incident.id, person)
        prompts.ask(s, user_id, prompts.MOBILISE, {"step": "location", "incident": incident.id})
        out.send_with(chat_id, t("mobilise.ask_location"), ask_location={"share": t("mobilise.button_share_location")})
    elif what == mb.CHECK_OUT and values:
        row = checkins.check_out(s, person, int(values[0]), now=now)
        out.send(chat_id, t("mobilise.checked_out",
                            duration=checkins.duration_text((now - row.checked_in_at).total_seconds())))
    elif what == mb.TAKE and values:
        task = tasks.take(s, person, int(values[0]), now=now)
        out.send(chat_id, t("mobilise.task_took", task=roll.task_line(s, task)),
                 tasks.taken_buttons(task.id, task.incident_id))
    elif what == mb.DONE and values:
        task = tasks.done(s, person, int(values[0]), now=now)
        out.send(chat_id, t("mobilise.task_finished", task=roll.task_line(s, task)))
    else:
        return t("button_invalid")
    return None


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed ETA after 稍后到, or words where a location was asked for."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.text is not None
    chat_id, text = message.chat_id, message.text.strip()
    tz = context.application.bot_data["services"].settings.tz
    step = asked.value.get("step")

    def work(s: Session, out: Outgoing) -> None:
        if step == "location":
            if take_answer(s, out, chat_id, user.id, prompts.MOBILISE, text, needed="mobilise.location_needed",
                           cancelled="mobilise.location_cancelled"):
                prompts.ask(s, user.id, prompts.MOBILISE, asked.value)  # still waiting for the location
                out.send(chat_id, t("mobilise.location_needed"))
            return
        if not take_answer(s, out, chat_id, user.id, prompts.MOBILISE, text, needed="mobilise.eta_needed",
                           cancelled="mobilise.cancelled"):
            return
        now = clock.now()
        minutes = answers.parse_eta(text, now, tz)
        if minutes is None:
            prompts.ask(s, user.id, prompts.MOBILISE, asked.value)
            out.send(chat_id, t("mobilise.eta_needed"))
            return
        try:
            call = answers.answer(s, residents.person_by_telegram(s, user.id), int(asked.value["incident"]),
                                  Answer.late, eta_minutes=minutes, now=now, tz=tz)
        except NotAllowed as exc:
            out.send(chat_id, str(exc))
            return
        called = asked.value.get("message")
        if called is not None:  # the call's ETA buttons go: it reads as answered
            text_, rows = _call_message(s, call, tz)
            out.edit(chat_id, int(called), text_, rows)
        else:
            _answered(s, out, chat_id, None, call, tz)
            return
        out.send(chat_id, answers.answer_line(call, tz))
        _grid_tasks(s, out, chat_id, call)

    await respond(context, work)


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked, router: Router) -> None:
    """The location after 到岗签到: inside the grid, checked in; outside, refused naming the grid
    (the question stays open, so the next location is tried again)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    location = message.location or (message.venue.location if message.venue else None)
    assert location is not None
    chat_id, tz = message.chat_id, context.application.bot_data["services"].settings.tz

    def work(s: Session, out: Outgoing) -> None:
        person = residents.person_by_telegram(s, user.id)
        now = clock.now()
        try:
            row = checkins.check_in(s, router, person, int(asked.value["incident"]), location.latitude,
                                    location.longitude, now=now, tz=tz)
        except NotAllowed as exc:
            log.info("refused a check-in of user %s", user.id)
            out.send(chat_id, str(exc))
            return
        prompts.clear(s, user.id, prompts.MOBILISE)
        grid = s.get(Grid, row.grid_id)
        at = now.astimezone(tz).strftime("%H:%M")
        text = (t("mobilise.checked_in_task", grid=grid.name if grid else "", at=at, task=row.task_id) if row.task_id
                else t("mobilise.checked_in", grid=grid.name if grid else "", at=at))
        out.send(chat_id, text, [[mb.button(t("mobilise.button_check_out"), mb.CHECK_OUT, row.incident_id)]])

    await respond(context, work)
