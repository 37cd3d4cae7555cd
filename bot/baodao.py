"""/baodao (双报到), its approval, /roster, and 附近的党组织 (/dangzuzhi) in chat.

/baodao is three short steps, buttons first: the party organisation (the registry's offered as
buttons, or typed), the work unit (the same), then skills and availability as toggled buttons and
提交. The building is the person's binding. The draft is the person's open question
(core.messaging.prompts BAODAO), so a restart loses nothing. The grid's secretary and the
community's admins get the registration with 同意 / 不同意; 不同意 asks for the reason, which the
member is told. Every decision is checked on the server (core.baodao.registration).

附近的党组织 (the words, or /dangzuzhi) with a place name, or a shared location after it, answers
with the nearest organisations and 党群服务中心 (core.baodao.navigation).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, answer_press, button, respond, show, take_answer
from core.access.permissions import NotAllowed
from core.baodao import navigation, registration, roster
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.models import BaodaoRegistration, Grid, Person
from core.people import residents
from core.places.router import Router
from core.text import normalise

log = logging.getLogger("gridbot.bot.baodao")

PRESS = "bd"  # button data: ["bd", what, value]
NAV_WORDS = ("附近的党组织", "附近党组织", "找党组织")


def is_press(data: object) -> bool:
    return isinstance(data, list) and 2 <= len(data) <= 3 and data[0] == PRESS


def _services(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"]


# -- /baodao: the three steps -----------------------------------------------------------

def _choices(rows: list[Any], what: str) -> Buttons:
    return [[button(r.name, [PRESS, what, r.id])] for r in rows] + [[button(t("baodao.button_cancel"), [PRESS, "cancel"])]]


def _tag_buttons(chosen: list[str]) -> Buttons:
    tags = [button(t("baodao.tag_on", tag=tag) if tag in chosen else tag, [PRESS, "tag", tag])
            for tag in registration.TAGS]
    grid = [tags[i:i + 3] for i in range(0, len(tags), 3)]
    return grid + [[button(t("baodao.button_submit"), [PRESS, "submit"]),
                    button(t("baodao.button_cancel"), [PRESS, "cancel"])]]


def _ask_unit(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    person = residents.person_by_telegram(s, user_id)
    building = registration.home(s, person)
    grid = s.get(Grid, building.grid_id)
    assert grid is not None
    prompts.ask(s, user_id, prompts.BAODAO, {**draft, "step": "unit"})
    out.send(chat_id, t("baodao.ask_unit"), _choices(registration.known_units(s, grid.community_id), "unit"))


def _ask_tags(out: Outgoing, s: Session, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    prompts.ask(s, user_id, prompts.BAODAO, {**draft, "step": "tags", "tags": []})
    out.send(chat_id, t("baodao.ask_tags"), _tag_buttons([]))


async def on_baodao(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        person = residents.person_by_telegram(s, user.id)
        try:
            building = registration.check_can_register(s, person)
        except NotAllowed as exc:
            out.send(chat_id, str(exc))
            return
        grid = s.get(Grid, building.grid_id)
        assert grid is not None
        prompts.ask(s, user.id, prompts.BAODAO, {"step": "organisation"})
        out.send(chat_id, t("baodao.ask_organisation", home=building.address),
                 _choices(registration.known_organisations(s, grid.community_id), "org"))

    await respond(context, work)


def takes_text(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.BAODAO


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed answer to a /baodao step, or a decider's reason for 不同意."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.text is not None
    chat_id, text = message.chat_id, message.text.strip()
    step = asked.value.get("step")

    def work(s: Session, out: Outgoing) -> None:
        if step == "reason":
            if take_answer(s, out, chat_id, user.id, prompts.BAODAO, text,
                           needed="baodao.reason_needed", cancelled="baodao.reason_cancelled"):
                _decide(s, out, chat_id, None, user.id, int(asked.value["registration"]), approve=False, reason=text)
            return
        if not take_answer(s, out, chat_id, user.id, prompts.BAODAO, text,
                           needed="baodao.needed", cancelled="baodao.cancelled"):
            return
        if step == "tags":  # the last step is buttons only
            prompts.ask(s, user.id, prompts.BAODAO, asked.value)
            out.send(chat_id, t("baodao.needed"))
            return
        try:
            name = registration.clean_name(text)
        except NotAllowed as exc:
            prompts.ask(s, user.id, prompts.BAODAO, asked.value)
            out.send(chat_id, str(exc))
            return
        if step == "organisation":
            _ask_unit(s, out, chat_id, user.id, {"organisation": name})
        else:
            _ask_tags(out, s, chat_id, user.id, {**asked.value, "unit": name})

    await respond(context, work)


def _decide(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int,
            registration_id: int, *, approve: bool, reason: str = "") -> None:
    """Approve or decline; the decider's message says so, the member is told."""
    actor = residents.person_by_telegram(s, user_id)
    row = registration.decide(s, actor, registration_id, approve=approve, reason=reason)
    member = s.get(Person, row.person_id)
    name = member.display_name if member else ""
    done = t("baodao.approved" if approve else "baodao.declined", name=name)
    if message_id is not None:
        out.edit(chat_id, message_id, t("baodao.to_decide", summary=registration.summary(s, row)) + "\n" + done)
    else:
        out.send(chat_id, done)
    if member is not None and member.telegram_id is not None:
        grid = s.get(Grid, row.grid_id)
        out.send(member.telegram_id, t("baodao.told_approved", grid=grid.name if grid else "") if approve
                 else t("baodao.told_declined", reason=row.reason or ""))


def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None,
           data: list[Any]) -> str | None:
    """Act on a press; the alert to show (a refusal), or None."""
    what, value = data[1], data[2] if len(data) > 2 else 0
    if what == "yes":
        _decide(s, out, chat_id, message_id, user_id, int(value), approve=True)
        return None
    if what == "no":
        row = s.get(BaodaoRegistration, int(value))
        registration.check_decider(s, residents.person_by_telegram(s, user_id), row)
        assert row is not None
        prompts.ask(s, user_id, prompts.BAODAO, {"step": "reason", "registration": row.id})
        out.send(chat_id, t("baodao.ask_reason"))
        return None
    asked = prompts.current(s, user_id)
    if asked is None or asked.kind != prompts.BAODAO:
        return t("button_invalid")
    draft, step = dict(asked.value), asked.value.get("step")
    if what == "cancel":
        prompts.clear(s, user_id, prompts.BAODAO)
        show(out, chat_id, message_id, t("baodao.cancelled"))
    elif what == "org" and step == "organisation":
        org = registration.organisation_named(s, int(value))
        show(out, chat_id, message_id, org)
        _ask_unit(s, out, chat_id, user_id, {"organisation": org})
    elif what == "unit" and step == "unit":
        unit = registration.unit_named(s, int(value))
        show(out, chat_id, message_id, unit)
        _ask_tags(out, s, chat_id, user_id, {**draft, "unit": unit})
    elif what == "tag" and step == "tags" and value in registration.TAGS:
        tags = list(draft.get("tags") or [])
        tags = [x for x in tags if x != value] if value in tags else [*tags, value]
        prompts.ask(s, user_id, prompts.BAODAO, {**draft, "tags": tags})
        if message_id is not None:
            out.markup(chat_id, message_id, _tag_buttons(tags))
    elif what == "submit" and step == "tags":
        person = residents.person_by_telegram(s, user_id)
        row = registration.submit(s, person, organisation=str(draft.get("organisation", "")),
                                  work_unit=str(draft.get("unit", "")), tags=list(draft.get("tags") or []))
        prompts.clear(s, user_id, prompts.BAODAO)
        text = registration.summary(s, row)
        show(out, chat_id, message_id, t("baodao.submitted", summary=text))
        for decider in registration.deciders(s, row):
            assert decider.telegram_id is not None
            out.send(decider.telegram_id, t("baodao.to_decide", summary=text),
                     [[button(t("baodao.button_approve"), [PRESS, "yes", row.id]),
                       button(t("baodao.button_decline"), [PRESS, "no", row.id])]])
    else:
        return t("button_invalid")  # a button of an earlier step
    return None



async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    await answer_press(update, context, lambda s, out, user_id, chat_id, message_id:
                       _press(s, out, user_id, chat_id, message_id, data))


# -- /roster ---------------------------------------------------------------------------

async def on_roster(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        texts = roster.rosters_for(s, residents.person_by_telegram(s, user.id))
        for text in texts or [t("roster.none")]:
            out.send(chat_id, text)

    await respond(context, work)


# -- 附近的党组织 -------------------------------------------------------------------------

def nav_place(text: str) -> str | None:
    """The place after the words 附近的党组织 ("" when none); None when the text is not that ask."""
    words = normalise(text)
    for prefix in NAV_WORDS:
        if words.startswith(prefix):
            return words[len(prefix):].strip(" ：:，,")
    return None


def takes_nav(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.NAV


async def _answer_place(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, place: str, *,
                        asked: bool = False) -> bool:
    """Answer for `place` (none: ask for one). `asked`: the text answers the open question, and
    one that names no place is left unanswered (False), the question closed."""
    router: Router = await _services(context).router()

    def work(s: Session, out: Outgoing) -> bool:
        if not place:
            prompts.ask(s, user_id, prompts.NAV)
            out.send(chat_id, t("nav.ask"))
            return True
        prompts.clear(s, user_id, prompts.NAV)
        if place in prompts.CANCEL_WORDS:
            out.send(chat_id, t("nav.cancelled"))
            return True
        found = navigation.locate(s, router, place)
        if found is None:
            if asked:
                return False
            prompts.ask(s, user_id, prompts.NAV)
            out.send(chat_id, t("nav.not_found", place=place))
            return True
        out.send(chat_id, navigation.answer(navigation.nearest(s, found.lat, found.lon), found.label))
        return True

    handled, _ = await respond(context, work)
    return handled


async def on_dangzuzhi(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    await _answer_place(context, message.chat_id, user.id, " ".join(context.args or []).strip())


async def on_nav_text(update: Update, context: ContextTypes.DEFAULT_TYPE, place: str) -> None:
    """附近的党组织 typed, with a place after it or none."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    await _answer_place(context, message.chat_id, user.id, place)


async def on_nav_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A text while 附近的党组织 waits for a place: answered if it names one (True); else the
    question closes and the text is the caller's to pass on (a report is never lost here)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.text is not None
    return await _answer_place(context, message.chat_id, user.id, message.text.strip(), asked=True)


async def on_nav_location(update: Update, context: ContextTypes.DEFAULT_TYPE, lat: float, lon: float) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        prompts.clear(s, user.id, prompts.NAV)
        out.send(chat_id, navigation.answer(navigation.nearest(s, lat, lon)))

    await respond(context, work)


def handlers() -> list[BaseHandler]:
    private = filters.ChatType.PRIVATE
    return [CommandHandler("baodao", on_baodao, filters=private),
            CommandHandler("roster", on_roster, filters=private),
            CommandHandler("dangzuzhi", on_dangzuzhi, filters=private)]
