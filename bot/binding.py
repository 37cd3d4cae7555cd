"""/start: bind a Telegram user to where they live, and ask for contact consent.

Three ways in, one outcome: community → building by buttons, a typed place
resolved by core.places.router, or a shared Telegram location (nearest buildings of
the grid it falls in). Then 同意 / 不同意 keeping their contact for follow-up.
An unfinished binding is a prompt (core.messaging.prompts, kind "binding"), set with the
message that asks the next step, so a typed place is taken as the answer also
after a restart; the buttons' data is in the database (core.messaging.buttons). A person binds at most
`binding_limit_per_day` times in 24 hours (core.access.limits.bindings); beyond that /start
says from when it works again and, to someone who consented, still offers to withdraw
the consent, which is never refused.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import ContextTypes

from bot import followup
from bot.replies import Buttons, Outgoing, button, respond
from core.access import limits
from core.config import get_settings
from core.db import read_scope
from core.messages import t
from core.messaging import prompts
from core.people import residents
from core.places import directory
from core.places.router import Router, RouteStatus
from core.text import normalise

TAG = "bind"  # button data: ["bind", step, value]
ROW = 3  # building buttons per row


def _rows(buttons: list[dict[str, Any]], per_row: int) -> Buttons:
    return [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]


def _button(text: str, step: str, value: Any) -> dict[str, Any]:
    return button(text, [TAG, step, value])


def is_press(data: Any) -> bool:
    return isinstance(data, list) and len(data) == 3 and data[0] == TAG


def _nearest(factory: sessionmaker[Session], grid_codes: list[str], lat: float, lon: float) -> list[tuple[str, str]]:
    with read_scope(factory) as s:
        return directory.nearest_buildings(s, grid_codes, lat, lon)


class Limited(NamedTuple):
    text: str
    withdraw: str | None  # the person's building code when they may still withdraw consent


def _limited(s: Session, telegram_id: int) -> Limited | None:
    """Why this person may not bind again now (core.access.limits.bindings), or None."""
    person = residents.person_by_telegram(s, telegram_id)
    verdict = limits.bindings(s, person.id if person is not None else None, settings=get_settings())
    if verdict.allowed:
        return None
    assert person is not None  # someone never bound is never limited
    text = t("limit.binding", limit=verdict.limit, at=verdict.retry_local(get_settings().tz, with_date=True))
    building = residents.home_of(s, person)
    return Limited(text, building.code if building is not None and person.contact_consent else None)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        limited = _limited(s, user.id)
        if limited is not None:  # too many bindings today; withdrawing consent is always possible
            prompts.clear(s, user.id, prompts.BINDING)
            if limited.withdraw is None:
                out.send(chat_id, limited.text)
            else:
                out.send(chat_id, limited.text + "\n" + t("limit.binding_withdraw"),
                         [[_button(t("bind.button_withdraw"), "consent", [limited.withdraw, False])]])
            return
        prompts.ask(s, user.id, prompts.BINDING, {"step": "community"})
        out.send(chat_id, t("bind.welcome"),
                 [[_button(name, "community", code)] for code, name in directory.communities(s)])

    await respond(context, work)


# What an address answer is made of: numbers with place words, estate and place names, fillers.
_PLACE_PARTS = re.compile(r"\d+\s*(?:号楼|号院|号|栋|幢|座|单元|层|楼|室|门|期|区)?|[a-zA-Z]|"
                          r"我家|我住|住在|住|在|是|的|了|呢|啊|吧|哦|小区|社区|家园|花园|公寓|大厦|里|苑|园|村|"
                          r"东|西|南|北|[一二三四五六七八九十]|[\s，。,.!！?？、~～]")
PLACE_SLACK = 6  # characters beyond an address's own words: more, and it is a message, not a place


def says_more_than_a_place(text: str) -> bool:
    """True when a typed answer holds more than an address (a complaint, a cry for help)."""
    return len(_PLACE_PARTS.sub("", normalise(text))) > PLACE_SLACK


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, router: Router) -> bool:
    """A typed place while binding; False if it is no place at all (the caller treats it as a report)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.text is not None and user is not None
    if says_more_than_a_place(message.text):
        return False  # "5号楼厨房着火了": a report (or an emergency) while binding; binding waits
    result = router.by_text(message.text)
    buildings = [c for c in result.candidates if c.kind == "building"]
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> bool:
        if result.status is RouteStatus.matched and buildings and buildings[0].code == result.candidates[0].code:
            _ask_consent(s, out, user.id, chat_id, None, buildings[0].code, buildings[0].label)
            return True
        if buildings:
            out.send(chat_id, t("bind.choose"), [[_button(c.label, "building", c.code)] for c in buildings[:4]])
            return True
        prompts.clear(s, user.id, prompts.BINDING)
        return False

    taken, _ = await respond(context, work)
    return taken


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE, router: Router,
                      factory: sessionmaker[Session]) -> None:
    message = update.effective_message
    assert message is not None and message.location is not None
    lat, lon = message.location.latitude, message.location.longitude
    result = router.by_point(lat, lon)
    grids = [c.code for c in result.candidates if result.status is not RouteStatus.none]
    nearest = await asyncio.to_thread(_nearest, factory, grids, lat, lon) if grids else []
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        if not nearest:
            out.send(chat_id, t("bind.location_outside"))
        else:
            out.send(chat_id, t("bind.choose"), [[_button(address, "building", code)] for code, address in nearest])

    await respond(context, work)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    await query.answer()
    _, step, value = data
    chat_id = query.message.chat.id if query.message is not None else user.id
    message_id = query.message.message_id if query.message is not None else None

    def show(out: Outgoing, text: str, buttons: Buttons | None = None) -> None:
        if message_id is not None:
            out.edit(chat_id, message_id, text, buttons)
        else:
            out.send(chat_id, text, buttons)

    def work(s: Session, out: Outgoing) -> None:
        if step == "community":
            prompts.ask(s, user.id, prompts.BINDING, {"step": "building"})
            show(out, t("bind.pick_building"),
                 _rows([_button(address.replace("小区", ""), "building", code)
                        for code, address in directory.buildings_of(s, str(value))], ROW))
        elif step == "building":
            _ask_consent(s, out, user.id, chat_id, message_id, str(value), _address(s, str(value)))
        elif step == "consent":
            code, consent = value
            prompts.clear(s, user.id, prompts.BINDING)
            label, bound = _bind(s, user.id, user.full_name, str(code), bool(consent))
            if not bound:  # the limit was reached meanwhile (another /start finished first)
                show(out, label)
                return
            show(out, t("bind.done", place=label) + "\n" + t("bind.consent_yes" if consent else "bind.consent_no"))
            person = residents.person_by_telegram(s, user.id)
            if consent and person is not None and not person.phone:  # follow-up needs a number (bot/followup.py)
                followup.ask_phone(out, s, user.id, chat_id)

    await respond(context, work)


def _address(s: Session, code: str) -> str:
    return directory.building(s, code).address


def _bind(s: Session, telegram_id: int, name: str, code: str, consent: bool) -> tuple[str, bool]:
    """(the place, True) once bound; (why not, False) over the binding limit. Staying in
    one's building without consent (withdrawing it) is never refused."""
    building = directory.building(s, code)
    person = residents.person_by_telegram(s, telegram_id)
    withdrawing = person is not None and person.building_id == building.id and not consent
    limited = None if withdrawing else _limited(s, telegram_id)
    if limited is not None:
        return limited.text, False
    residents.bind_resident(s, telegram_id, name, building.id, consent)
    return f"{building.address}（{building.grid.name}）", True


def _ask_consent(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None, code: str,
                 label: str) -> None:
    """The consent question: an edit of the pressed message, or a new one after a typed place."""
    prompts.ask(s, user_id, prompts.BINDING, {"step": "consent"})
    keyboard = [[_button(t("bind.button_agree"), "consent", [code, True])],
                [_button(t("bind.button_refuse"), "consent", [code, False])]]
    text = t("bind.consent", place=label)
    if message_id is not None:
        out.edit(chat_id, message_id, text, keyboard)
    else:
        out.send(chat_id, text, keyboard)
