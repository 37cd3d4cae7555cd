"""议事 in chat: /yishi, /tiyi, /queren and the buttons of consultations and proposals.

/yishi shows a resident the open consultations of their building (vote buttons, 写意见,
查看结果 when live) and the proposals of their grid to 附议; a secretary or admin also gets
发起议事, the recent consultations (意见 to moderate, 写决议 after the deadline) and the agenda
(答复). Opening is a state machine on the sender's prompt (kind "consult"), like /schedule:

    grid (if several) -> scope (grid / party group / building) -> question (typed)
    -> options (typed, or 只收意见) -> deadline (buttons) -> live results? -> 发起 | 取消

Typed steps of the same prompt: a comment, the minutes, a proposal's answer. Every decision is
core.consult's; a refusal is answered as an alert with its reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot import lists_chat
from bot.replies import Buttons, Outgoing, respond, take_answer
from core.access.permissions import NotAllowed
from core.consult import buttons as b
from core.consult import choices, clock, proposals, residents, service
from core.messages import t
from core.messaging import prompts
from core.people.residents import person_by_telegram

TYPED = {"question", "options", "comment", "minutes", "answer"}
DEADLINE_DAYS = (1, 3, 7)
ROW = 2


def _services(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"]


def is_press(data: Any) -> bool:
    return b.parse(data) is not None


def takes_text(asked: prompts.Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.CONSULT and asked.value.get("step") in TYPED


def _rows(items: list[dict[str, Any]], per_row: int = ROW) -> Buttons:
    return [items[i:i + per_row] for i in range(0, len(items), per_row)]


# -- /yishi ------------------------------------------------------------------------------------

async def on_yishi(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id, tz = message.chat_id, _services(context).settings.tz

    def work(s: Session, out: Outgoing) -> None:
        person, now = person_by_telegram(s, user.id), clock.now()
        opened = service.open_for(s, person, now)
        for c in opened[:5]:
            out.send(chat_id, *service.card(s, c, person, now, tz))
        gathering = proposals.open_in_grid(s, person)
        for p in gathering:
            out.send(chat_id, t("proposal.listing", topic=p.topic, n=proposals.supporters(s, p)),
                     [[b.button(t("proposal.button_support"), b.SUPPORT, p.id)]])
        manager = _manager_menu(s, person, now)
        if manager is not None:
            out.send(chat_id, *manager)
        elif not opened and not gathering:
            out.send(chat_id, t("consult.none_open"))

    await respond(context, work)


def _manager_menu(s: Session, person: Any, now: Any) -> tuple[str, Buttons] | None:
    if not choices.grids_for(s, person):
        return None
    keyboard: Buttons = [[b.button(t("consult.button_new"), b.NEW)]]
    lines = [t("consult.menu")]
    for c in service.managed(s, person):
        state = t("consult.state_open") if not service.is_over(c, now) else (
            t("consult.state_minuted") if c.minutes else t("consult.state_closed"))
        lines.append(t("consult.menu_line", id=c.id, question=c.question[:20], state=state))
        row = [b.button(t("consult.button_comments_of", id=c.id), b.COMMENTS, c.id)]
        if service.is_over(c, now) and c.minutes is None:
            row.append(b.button(t("consult.button_minutes_of", id=c.id), b.MINUTES, c.id))
        keyboard.append(row)
    for p in proposals.agenda(s, person):
        lines.append(t("proposal.agenda_line", topic=p.topic[:20], n=proposals.supporters(s, p)))
        keyboard.append([b.button(t("proposal.button_answer_of", topic=p.topic[:10]), b.ANSWER, p.id)])
    return "\n".join(lines), keyboard


# -- /tiyi and /queren -------------------------------------------------------------------------

async def on_tiyi(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    topic, chat_id, svc = " ".join(context.args or []), message.chat_id, _services(context)
    settings = svc.settings

    def work(s: Session, out: Outgoing) -> None:
        if not topic.strip():
            out.send(chat_id, t("proposal.usage"))
            return
        try:
            p = proposals.propose(s, person_by_telegram(s, user.id), topic, now=clock.now(),
                                  needed=settings.proposal_supporters, answer_days=settings.proposal_answer_days,
                                  tz=settings.tz)
        except NotAllowed as exc:
            out.send(chat_id, str(exc))
            return
        out.send(chat_id, t("proposal.made", n=proposals.supporters(s, p), needed=settings.proposal_supporters))

    await respond(context, work)
    await svc.dispatch()


def _check_list(s: Session, user_id: int) -> tuple[str, Buttons]:
    grids = residents.checking_grids(s, person_by_telegram(s, user_id))
    if not grids:
        return t("consult.check_not_allowed"), []
    pending = residents.unchecked(s, grids)
    if not pending:
        return t("consult.check_none"), []
    return t("consult.check_list", n=len(pending)), [
        [b.button(t("consult.button_check", name=p.display_name, address=building.address), b.CHECK, p.id, building.id)]
        for p, building in pending]


async def on_queren(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id
    await respond(context, lambda s, out: out.send(chat_id, *_check_list(s, user.id)))


# -- typed steps -------------------------------------------------------------------------------

async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.text is not None
    text, chat_id, value, svc = message.text.strip(), message.chat_id, asked.value, _services(context)

    def work(s: Session, out: Outgoing) -> None:
        step = value["step"]
        if not take_answer(s, out, chat_id, user.id, prompts.CONSULT, text, needed="consult.typed_needed",
                           cancelled="consult.cancelled"):
            return
        person, now = person_by_telegram(s, user.id), clock.now()
        try:
            if step == "question":
                prompts.ask(s, user.id, prompts.CONSULT, {**value, "step": "options", "question": text[:300]})
                out.send(chat_id, t("consult.ask_options"), [[b.button(t("consult.button_no_options"), b.NO_OPTIONS)]])
            elif step == "options":
                options = service.clean_options(text)
                if len(options) < 2 or len(options) > service.MAX_OPTIONS:
                    prompts.ask(s, user.id, prompts.CONSULT, value)
                    out.send(chat_id, t("consult.options_count", most=service.MAX_OPTIONS),
                             [[b.button(t("consult.button_no_options"), b.NO_OPTIONS)]])
                    return
                _ask_deadline(s, out, user.id, chat_id, {**value, "options": options})
            elif step == "comment":
                out.send(chat_id, service.comment(s, person, int(value["id"]), text, now=now))
            elif step == "minutes":
                c = service.write_minutes(s, person, int(value["id"]), text, now=now)
                out.send(chat_id, t("consult.minutes_done", n=c.participants or 0),
                         [[b.button(t("consult.button_ticket"), b.TICKET, c.id)],
                          [lists_chat.minutes_button(c.id)]])  # 三张清单: minutes → a need → a project
            elif step == "answer":
                proposals.answer(s, person, int(value["id"]), text, now=now)
                out.send(chat_id, t("proposal.answer_done"))
        except NotAllowed as exc:
            out.send(chat_id, str(exc))

    await respond(context, work)
    await svc.dispatch()


def _ask_deadline(s: Session, out: Outgoing, user_id: int, chat_id: int, draft: dict[str, Any]) -> None:
    prompts.ask(s, user_id, prompts.CONSULT, {**draft, "step": "deadline"})
    out.send(chat_id, t("consult.ask_deadline"),
             [[b.button(t("consult.button_days", n=n), b.DEADLINE, n) for n in DEADLINE_DAYS]])


# -- presses -----------------------------------------------------------------------------------

async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: Any) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    parsed = b.parse(data)
    assert parsed is not None
    what, values = parsed
    svc = _services(context)
    message = query.message
    chat_id = message.chat.id if message is not None else user.id
    message_id = message.message_id if message is not None else None

    def work(s: Session, out: Outgoing) -> str | None:
        """The alert to show (a refusal or a short confirmation), or None."""
        try:
            return _press(s, out, user.id, chat_id, message_id, what, values, svc.settings)
        except NotAllowed as exc:
            return str(exc)

    alert, _ = await respond(context, work)
    await query.answer(alert or None, show_alert=bool(alert))
    await svc.dispatch()


def _draft(s: Session, user_id: int, step: str) -> dict[str, Any]:
    asked = prompts.current(s, user_id)
    if asked is None or asked.kind != prompts.CONSULT or asked.value.get("step") != step:
        raise NotAllowed(t("button_invalid"))
    return asked.value


def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, what: str,
           values: list[Any], settings: Any) -> str | None:
    person, now, tz = person_by_telegram(s, user_id), clock.now(), settings.tz

    def show(text: str, keyboard: Buttons | None = None) -> None:
        if message_id is not None:
            out.edit(chat_id, message_id, text, keyboard)
        else:
            out.send(chat_id, text, keyboard)

    if what == b.VOTE:
        answer = service.vote(s, person, int(values[0]), int(values[1]), now=now)
        show(*service.card(s, service.get(s, int(values[0])), person, now, tz))
        return answer
    if what == b.COMMENT:
        service.may_take_part(s, service.get(s, int(values[0])), person, now)
        prompts.ask(s, user_id, prompts.CONSULT, {"step": "comment", "id": int(values[0])})
        out.send(chat_id, t("consult.ask_comment"))
    elif what == b.RESULTS:
        out.send(chat_id, service.results_text(s, service.get(s, int(values[0])), now))
    elif what == b.NEW:
        grids = choices.grids_for(s, person)
        if not grids:
            raise NotAllowed(t("deny.action", action=t("action.consult.open")))
        grid_id = int(values[0]) if values else (grids[0].id if len(grids) == 1 else None)
        if grid_id is None:
            show(t("consult.pick_grid"), _rows([b.button(g.name, b.NEW, g.id) for g in grids]))
            return None
        if grid_id not in {g.id for g in grids}:
            raise NotAllowed(t("deny.action", action=t("action.consult.open")))
        prompts.ask(s, user_id, prompts.CONSULT, {"step": "scope"})
        show(t("consult.pick_scope"), _rows([b.button(label, b.SCOPE, kind, ref)
                                             for kind, ref, label in choices.scopes(s, grid_id)]))
    elif what == b.SCOPE:
        _draft(s, user_id, "scope")
        grid_id, building_ids, label = choices.resolve(s, str(values[0]), int(values[1]))
        prompts.ask(s, user_id, prompts.CONSULT, {"step": "question", "grid": grid_id, "buildings": building_ids,
                                                  "label": label})
        show(t("consult.ask_question", scope=label))
    elif what == b.NO_OPTIONS:
        _ask_deadline(s, out, user_id, chat_id, {**_draft(s, user_id, "options"), "options": []})
    elif what == b.DEADLINE:
        draft = _draft(s, user_id, "deadline")
        prompts.ask(s, user_id, prompts.CONSULT, {**draft, "step": "live", "days": int(values[0])})
        show(t("consult.ask_live"), [[b.button(t("consult.button_live"), b.LIVE, 1)],
                                     [b.button(t("consult.button_after"), b.LIVE, 0)]])
    elif what == b.LIVE:
        draft = {**_draft(s, user_id, "live"), "live": bool(values[0]), "step": "confirm"}
        prompts.ask(s, user_id, prompts.CONSULT, draft)
        deadline = (now + timedelta(days=int(draft["days"]))).astimezone(tz).strftime("%m-%d %H:%M")
        show(t("consult.preview", scope=draft["label"], question=draft["question"],
               options="、".join(draft["options"]) or t("consult.card_comments_only"), deadline=deadline,
               live=t("consult.button_live" if draft["live"] else "consult.button_after")),
             [[b.button(t("consult.button_go"), b.CONFIRM), b.button(t("consult.button_cancel"), b.CANCEL)]])
    elif what == b.CONFIRM:
        draft = _draft(s, user_id, "confirm")
        c = service.open_consultation(s, person, grid_id=int(draft["grid"]), building_ids=draft["buildings"],
                                      scope_label=draft["label"], question=draft["question"],
                                      options=list(draft["options"]), live=bool(draft["live"]),
                                      deadline=now + timedelta(days=int(draft["days"])), now=now, tz=tz)
        prompts.clear(s, user_id, prompts.CONSULT)
        show(t("consult.opened", n=len(residents.verified_in(s, service.scope_buildings(s, c)))))
    elif what == b.CANCEL:
        prompts.clear(s, user_id, prompts.CONSULT)
        show(t("consult.cancelled"))
    elif what == b.COMMENTS:  # a message of its own: the menu stays
        _show_comments(s, person, int(values[0]), lambda *shown: out.send(chat_id, *shown))
    elif what == b.HIDE:
        row = service.hide(s, person, int(values[0]), now=now)
        _show_comments(s, person, row.consultation_id, show)
        return t("consult.hidden")
    elif what == b.MINUTES:
        c = service.get(s, int(values[0]))
        if not service.is_over(c, now):
            raise NotAllowed(t("consult.minutes_early"))
        service.comments(s, person, c.id)  # the same permission check as the minutes
        prompts.ask(s, user_id, prompts.CONSULT, {"step": "minutes", "id": c.id})
        out.send(chat_id, t("consult.ask_minutes", question=c.question))
    elif what == b.TICKET:
        number = service.minutes_to_ticket(s, person, int(values[0]), now=now, tz=tz)
        show(t("consult.ticket_made", number=number))
    elif what == b.SUPPORT:
        return proposals.support(s, person, int(values[0]), now=now, needed=settings.proposal_supporters,
                                 answer_days=settings.proposal_answer_days, tz=tz)
    elif what == b.ANSWER:
        p = next((p for p in proposals.agenda(s, person) if p.id == int(values[0])), None)
        if p is None:
            raise NotAllowed(t("proposal.answered_already"))
        prompts.ask(s, user_id, prompts.CONSULT, {"step": "answer", "id": p.id})
        out.send(chat_id, t("proposal.ask_answer", topic=p.topic))
    elif what == b.CHECK:
        confirmed = residents.confirm(s, person, int(values[0]), int(values[1]), now=now)
        show(*_check_list(s, user_id))
        return t("consult.checked", name=confirmed.display_name)
    else:
        raise NotAllowed(t("button_invalid"))
    return None


def _show_comments(s: Session, person: Any, consultation_id: int, show: Any) -> None:
    rows = service.comments(s, person, consultation_id)
    if not rows:
        show(t("consult.comments_none"))
        return
    lines = [t("consult.comments_head", n=len(rows))]
    keyboard: Buttons = []
    for n, row in enumerate(rows, start=1):
        lines.append(f"{n}. {row.text}" + (t("consult.comment_hidden_mark") if row.hidden_at else ""))
        if row.hidden_at is None:
            keyboard.append([b.button(t("consult.button_hide", n=n), b.HIDE, row.id)])
    show("\n".join(lines), keyboard)


def handlers() -> list[BaseHandler]:
    private = filters.ChatType.PRIVATE
    return [CommandHandler("yishi", on_yishi, filters=private),
            CommandHandler("tiyi", on_tiyi, filters=private),
            CommandHandler("queren", on_queren, filters=private)]
