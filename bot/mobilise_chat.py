"""战时 mobilisation in chat, the commander's and the leaders' side: /dongyuan (declare),
/zhanshi (the live roll, with 发布任务 and 结束动员 for the commander), the roster's 刷新.

/dongyuan is three steps, buttons first: the kind of incident, the area (a whole street or
community, or grids toggled on and 下一步), the order typed; then a confirmation with how many
people will be called, and 确认发布 declares it (core.mobilise.declare queues the call-out). The
draft is the commander's open question (core.messaging.prompts MOBILISE). Every press is checked
on the server: a non-commander, a grid outside the area, an incident already closed are refused
with the reason. The called people's side (answers, check-in, tasks) is bot/mobilise_answers.py.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot import mobilise_answers
from bot.replies import Buttons, Outgoing, answer_press, respond, show, take_answer
from core.access.commands import roles_of
from core.access.permissions import PERMISSIONS, NotAllowed
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.mobilise import area, clock, declare, report, roll, tasks
from core.mobilise import buttons as mb
from core.models import AreaLevel, IncidentKind, Person, TaskKind
from core.people import residents

log = logging.getLogger("gridbot.bot.mobilise")

TYPED_STEPS = {"order", "task_grid", "task_text"} | mobilise_answers.TYPED_STEPS


def _services(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"]


def is_press(data: object) -> bool:
    return mb.parse(data) is not None


def takes_text(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.MOBILISE


def takes_location(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.MOBILISE and asked.value.get("step") == "location"


def _cancel_row() -> list[dict[str, Any]]:
    return [mb.button(t("mobilise.button_cancel"), mb.CANCEL)]


# -- /dongyuan: declaring ----------------------------------------------------------------

def _kind_buttons() -> Buttons:
    kinds = [mb.button(t(f"mobilise.kind.{k.value}"), mb.KIND, k.value) for k in IncidentKind]
    return [kinds[i:i + 3] for i in range(0, len(kinds), 3)] + [_cancel_row()]


def _area_buttons(s: Session, person: Person | None, chosen: list[int]) -> Buttons:
    found = area.choices(s, person)
    rows: Buttons = [[mb.button(t("mobilise.button_whole_street", name=st.name), mb.AREA, "street", st.id)]
                     for st in found.streets]
    rows += [[mb.button(t("mobilise.button_whole_community", name=c.name), mb.AREA, "community", c.id)]
             for c in found.communities]
    grids = [mb.button(t("mobilise.grid_on", name=g.name) if g.id in chosen else g.name, mb.GRID, g.id)
             for g in found.grids]
    rows += [grids[i:i + 2] for i in range(0, len(grids), 2)]
    return rows + [[mb.button(t("mobilise.button_next"), mb.NEXT), *_cancel_row()]]


async def on_dongyuan(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        try:
            area.check_declarer(s, residents.person_by_telegram(s, user.id))
        except NotAllowed as exc:
            log.info("refused /dongyuan of user %s", user.id)
            out.send(chat_id, str(exc))
            return
        prompts.ask(s, user.id, prompts.MOBILISE, {"step": "kind"})
        out.send(chat_id, t("mobilise.declare_kind"), _kind_buttons())

    await respond(context, work)


def _ask_order(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int,
               draft: dict[str, Any]) -> None:
    person = residents.person_by_telegram(s, user_id)
    level = AreaLevel(draft["level"])
    where = area.resolve(s, person, level, draft.get("ident"), draft.get("grids"))
    show(out, chat_id, message_id, t("mobilise.area_chosen", area=area.label(s, where)))
    prompts.ask(s, user_id, prompts.MOBILISE, {**draft, "step": "order"})
    out.send(chat_id, t("mobilise.declare_order"), [_cancel_row()])


def _confirm(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any], text: str) -> None:
    """The typed order: checked, then the summary with 确认发布."""
    person = residents.person_by_telegram(s, user_id)
    try:
        order = declare.clean_order(text)
    except NotAllowed as exc:
        prompts.ask(s, user_id, prompts.MOBILISE, draft)
        out.send(chat_id, str(exc))
        return
    label, count = declare.preview(s, person, AreaLevel(draft["level"]), ident=draft.get("ident"),
                                   grid_ids=draft.get("grids"))
    prompts.ask(s, user_id, prompts.MOBILISE, {**draft, "step": "confirm", "order": order})
    out.send(chat_id, t("mobilise.declare_confirm", kind=declare.kind_label(draft["kind"]), area=label, order=order,
                        count=count),
             [[mb.button(t("mobilise.button_go"), mb.GO), *_cancel_row()]])


def _declaring(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, what: str,
               values: list[Any], tz: Any) -> str | None:
    asked = prompts.current(s, user_id)
    if asked is None or asked.kind != prompts.MOBILISE:
        return t("button_invalid")
    draft, step = dict(asked.value), asked.value.get("step")
    person = residents.person_by_telegram(s, user_id)
    if what == mb.KIND and step == "kind" and values and values[0] in {k.value for k in IncidentKind}:
        area.check_declarer(s, person)
        show(out, chat_id, message_id, t("mobilise.kind_chosen", kind=declare.kind_label(values[0])))
        prompts.ask(s, user_id, prompts.MOBILISE, {"step": "area", "kind": values[0], "grids": []})
        out.send(chat_id, t("mobilise.declare_area"), _area_buttons(s, person, []))
    elif what == mb.AREA and step == "area" and len(values) == 2 and values[0] in ("street", "community"):
        _ask_order(s, out, chat_id, message_id, user_id, {**draft, "level": values[0], "ident": int(values[1])})
    elif what == mb.GRID and step == "area" and values:
        grid_id = int(values[0])
        chosen = [g for g in draft.get("grids") or [] if g != grid_id] if grid_id in (draft.get("grids") or []) \
            else [*(draft.get("grids") or []), grid_id]
        prompts.ask(s, user_id, prompts.MOBILISE, {**draft, "grids": chosen})
        if message_id is not None:
            out.markup(chat_id, message_id, _area_buttons(s, person, chosen))
    elif what == mb.NEXT and step == "area":
        if not draft.get("grids"):
            return t("mobilise.deny.no_grids")
        _ask_order(s, out, chat_id, message_id, user_id, {**draft, "level": "grids", "ident": None})
    elif what == mb.GO and step == "confirm":
        incident, count = declare.declare(s, person, IncidentKind(draft["kind"]), AreaLevel(draft["level"]),
                                          ident=draft.get("ident"), grid_ids=draft.get("grids"),
                                          order=str(draft.get("order", "")), now=clock.now(), tz=tz)
        prompts.clear(s, user_id, prompts.MOBILISE)
        show(out, chat_id, message_id, t("mobilise.declared", id=incident.id, count=count))
        log.info("incident %s declared by user %s: %d called", incident.id, user_id, count)
    else:
        return t("button_invalid")  # a button of an earlier step
    return None


# -- /zhanshi: the live roll, tasks, closing -----------------------------------------------

def _roll_buttons(s: Session, person: Person | None, incident_id: int) -> Buttons:
    incident = area.find(s, incident_id)
    rows: Buttons = []
    if incident.closed_at is None and area.commands(s, person, incident):
        rows.append([mb.button(t("mobilise.button_task"), mb.TASK, incident.id),
                     mb.button(t("mobilise.button_close"), mb.CLOSE, incident.id)])
    return rows + [[mb.button(t("mobilise.button_refresh"), mb.ROLL, incident.id)]]


def _roll_of(s: Session, person: Person | None, incident_id: int, tz: Any) -> tuple[str, Buttons]:
    incident = area.find(s, incident_id)
    grids = area.visible_grids(s, person, incident.id)
    if not grids:
        raise NotAllowed(t("deny.action", action=t("action.mobilise.roll")))
    return roll.roll_text(s, incident, grids, clock.now(), tz), _roll_buttons(s, person, incident.id)


async def on_zhanshi(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id, tz = message.chat_id, _services(context).settings.tz

    def work(s: Session, out: Outgoing) -> None:
        person = residents.person_by_telegram(s, user.id)
        if person is None:
            out.send(chat_id, t("deny.unknown_person"))
            return
        if not roles_of(s, person) & PERMISSIONS[area.ROLL]:
            out.send(chat_id, t("deny.action", action=t("action.mobilise.roll")))
            return
        incidents = area.seen_by(s, person)
        if not incidents:
            out.send(chat_id, t("mobilise.none_active"))
        for incident in reversed(incidents):  # the oldest first, the newest last (nearest the input)
            out.send(chat_id, *_roll_of(s, person, incident.id, tz))

    await respond(context, work)


def _task_grid_buttons(s: Session, incident_id: int) -> Buttons:
    grids = [mb.button(g.name, mb.TASK_GRID, incident_id, g.id) for g in area.grids(s, incident_id)]
    return [grids[i:i + 2] for i in range(0, len(grids), 2)] + [_cancel_row()]


def _ask_task_kind(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int,
                   incident_id: int, grid_id: int) -> None:
    """The grid is chosen (checked: one of the incident's): the pressed message says so, the kinds follow."""
    grid = tasks.check_grid(s, residents.person_by_telegram(s, user_id), incident_id, grid_id)
    if message_id is not None:
        out.edit(chat_id, message_id, t("mobilise.task_grid_chosen", grid=grid.name))
    kinds = [mb.button(t(f"mobilise.task_kind.{k.value}"), mb.TASK_KIND, k.value) for k in TaskKind]
    prompts.ask(s, user_id, prompts.MOBILISE, {"step": "task_kind", "incident": incident_id, "grid": grid.id})
    out.send(chat_id, t("mobilise.ask_task_kind", grid=grid.name),
             [kinds[i:i + 3] for i in range(0, len(kinds), 3)] + [_cancel_row()])


def _commanding(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, what: str,
                values: list[Any], tz: Any) -> str | None:
    person = residents.person_by_telegram(s, user_id)
    if what == mb.ROLL:
        text, rows = _roll_of(s, person, int(values[0]), tz)
        show(out, chat_id, message_id, text, rows)
    elif what == mb.ROSTER:
        incident = area.find(s, int(values[0]))
        if int(values[1]) not in area.visible_grids(s, person, incident.id):
            raise NotAllowed(t("deny.action", action=t("action.mobilise.roll")))
        show(out, chat_id, message_id, roll.roster_text(s, incident, int(values[1]), clock.now(), tz),
             roll.roster_buttons(incident.id, int(values[1])))
    elif what == mb.TASK:
        incident = area.open_incident(s, int(values[0]))
        area.require_command(s, person, incident)
        prompts.ask(s, user_id, prompts.MOBILISE, {"step": "task_grid", "incident": incident.id})
        out.send(chat_id, t("mobilise.ask_task_grid"), _task_grid_buttons(s, incident.id))
    elif what == mb.TASK_GRID:
        _ask_task_kind(s, out, chat_id, message_id, user_id, int(values[0]), int(values[1]))
    elif what == mb.TASK_KIND:
        asked = prompts.current(s, user_id)
        if asked is None or asked.kind != prompts.MOBILISE or asked.value.get("step") != "task_kind" \
                or not values or values[0] not in {k.value for k in TaskKind}:
            return t("button_invalid")
        grid = tasks.check_grid(s, person, int(asked.value["incident"]), int(asked.value["grid"]))
        kind = t(f"mobilise.task_kind.{values[0]}")
        show(out, chat_id, message_id, t("mobilise.ask_task_text", grid=grid.name, kind=kind))
        prompts.ask(s, user_id, prompts.MOBILISE, {**asked.value, "step": "task_text", "task_kind": values[0]})
    elif what == mb.CLOSE:
        incident = area.find(s, int(values[0]))
        report.check_close(s, person, incident.id, tz)
        out.send(chat_id, t("mobilise.ask_close", id=incident.id),
                 [[mb.button(t("mobilise.button_close_yes"), mb.CLOSE_YES, incident.id), *_cancel_row()]])
    elif what == mb.CLOSE_YES:
        now = clock.now()
        incident = report.close(s, person, int(values[0]), now=now, tz=tz)
        show(out, chat_id, message_id, report.report_text(s, incident, None, now, tz))
        log.info("incident %s closed by user %s", incident.id, user_id)
    else:
        return t("button_invalid")
    return None


COMMANDER_PRESSES = {mb.ROLL, mb.ROSTER, mb.TASK, mb.TASK_GRID, mb.TASK_KIND, mb.CLOSE, mb.CLOSE_YES}
DECLARE_PRESSES = {mb.KIND, mb.AREA, mb.GRID, mb.NEXT, mb.GO}


def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, data: Any,
           tz: Any) -> str | None:
    parsed = mb.parse(data)
    if parsed is None:
        return t("button_invalid")
    what, values = parsed
    if chat_id != user_id:  # a message of someone else's chat (forwarded): answered in the presser's own
        chat_id, message_id = user_id, None
    if what == mb.CANCEL:
        asked = prompts.current(s, user_id)
        if asked is not None and asked.kind == prompts.MOBILISE:
            prompts.clear(s, user_id, prompts.MOBILISE)
        show(out, chat_id, message_id, t("mobilise.cancelled"))
        return None
    if what in DECLARE_PRESSES:
        return _declaring(s, out, user_id, chat_id, message_id, what, values, tz)
    if what in COMMANDER_PRESSES:
        return _commanding(s, out, user_id, chat_id, message_id, what, values, tz)
    return mobilise_answers.press(s, out, user_id, chat_id, message_id, what, values, tz)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: Any) -> None:
    tz = _services(context).settings.tz
    await answer_press(update, context, lambda s, out, user_id, chat_id, message_id:
                       _press(s, out, user_id, chat_id, message_id, data, tz))


# -- typed answers ---------------------------------------------------------------------------

async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed answer to a mobilisation step: the order, a task's grid or text, an ETA."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.text is not None
    chat_id, text = message.chat_id, message.text.strip()
    step = asked.value.get("step")
    if step in mobilise_answers.TYPED_STEPS:
        await mobilise_answers.on_text(update, context, asked)
        return

    def work(s: Session, out: Outgoing) -> None:
        needed = {"order": "mobilise.order_needed", "task_grid": "mobilise.task_grid_needed",
                  "task_text": "mobilise.task_needed"}.get(str(step), "mobilise.needed")
        if not take_answer(s, out, chat_id, user.id, prompts.MOBILISE, text, needed=needed,
                           cancelled="mobilise.cancelled"):
            return
        if step not in TYPED_STEPS:  # a step that takes buttons only
            prompts.ask(s, user.id, prompts.MOBILISE, asked.value)
            out.send(chat_id, t("mobilise.needed"))
            return
        person = residents.person_by_telegram(s, user.id)
        try:
            if step == "order":
                _confirm(s, out, chat_id, user.id, asked.value, text)
            elif step == "task_grid":
                grid = area.grid_named(s, text, [])
                if grid is None:
                    prompts.ask(s, user.id, prompts.MOBILISE, asked.value)
                    out.send(chat_id, t("mobilise.task_grid_needed"))
                    return
                _ask_task_kind(s, out, chat_id, None, user.id, int(asked.value["incident"]), grid.id)
            else:
                task, told = tasks.post(s, person, int(asked.value["incident"]), int(asked.value["grid"]),
                                        TaskKind(asked.value["task_kind"]), text, now=clock.now())
                out.send(chat_id, t("mobilise.task_posted", task=roll.task_line(s, task), count=told))
        except NotAllowed as exc:  # nothing was written: the step is asked again
            prompts.ask(s, user.id, prompts.MOBILISE, asked.value)
            out.send(chat_id, str(exc))

    await respond(context, work)


def handlers() -> list[BaseHandler]:
    private = filters.ChatType.PRIVATE
    return [CommandHandler("dongyuan", on_dongyuan, filters=private),
            CommandHandler("zhanshi", on_zhanshi, filters=private)]
