"""/start: bind a Telegram user to where they live, and ask for contact consent.

Three ways in, one outcome: community → building by buttons, a typed place
resolved by core.routing, or a shared Telegram location (nearest buildings of
the grid it falls in). Then 同意 / 不同意 keeping their contact for follow-up.
The state of an unfinished binding lives in `context.user_data` only; losing
it on a restart just means pressing /start again. A person binds at most
`binding_limit_per_day` times in 24 hours (core.limits.bindings); beyond that /start
says from when it works again and, to someone who consented, still offers to withdraw
the consent, which is never refused.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from core import limits, workflow
from core.config import get_settings
from core.db import read_scope, session_scope
from core.messages import t
from core.models import Building, Community, Grid
from core.routing import Router, RouteStatus
from core.text import normalise

STATE = "binding"
ROW = 3  # building buttons per row


def _rows(buttons: list[InlineKeyboardButton], per_row: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]


def _communities(factory: sessionmaker[Session]) -> list[tuple[str, str]]:
    with session_scope(factory) as s:
        return [(c.code, c.name) for c in s.scalars(select(Community).order_by(Community.code))]


def _buildings(factory: sessionmaker[Session], community_code: str) -> list[tuple[str, str]]:
    with session_scope(factory) as s:
        rows = s.execute(select(Building.code, Building.address).join(Grid).join(Community)
                         .where(Community.code == community_code).order_by(Building.code))
        return [(code, address) for code, address in rows]


def _nearest(factory: sessionmaker[Session], grid_codes: list[str], lat: float, lon: float,
             n: int = 3) -> list[tuple[str, str]]:
    with session_scope(factory) as s:
        rows = s.execute(select(Building.code, Building.address, Building.lat, Building.lon).join(Grid)
                         .where(Grid.code.in_(grid_codes), Building.lat.is_not(None)))
        ranked = sorted(rows, key=lambda r: math.hypot(r.lat - lat, (r.lon - lon) * math.cos(math.radians(lat))))
        return [(r.code, r.address) for r in ranked[:n]]


class Limited(NamedTuple):
    text: str
    withdraw: str | None  # the person's building code when they may still withdraw consent


def _limited(s: Session, telegram_id: int) -> Limited | None:
    """Why this person may not bind again now (core.limits.bindings), or None."""
    person = workflow.person_by_telegram(s, telegram_id)
    verdict = limits.bindings(s, person.id if person is not None else None)
    if verdict.allowed:
        return None
    assert person is not None  # someone never bound is never limited
    text = t("limit.binding", limit=verdict.limit, at=verdict.retry_local(get_settings().tz, with_date=True))
    building = s.get(Building, person.building_id) if person.building_id is not None else None
    return Limited(text, building.code if building is not None and person.contact_consent else None)


def _check_limit(factory: sessionmaker[Session], telegram_id: int) -> Limited | None:
    with read_scope(factory) as s:
        return _limited(s, telegram_id)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE, factory: sessionmaker[Session]) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    limited = await asyncio.to_thread(_check_limit, factory, user.id)
    if limited is not None:  # too many bindings today; withdrawing consent is always possible
        context.user_data.pop(STATE, None)  # type: ignore[union-attr]
        if limited.withdraw is None:
            await message.reply_text(limited.text)
            return
        button = InlineKeyboardButton(t("bind.button_withdraw"),
                                      callback_data=("bind", "consent", (limited.withdraw, False)))
        await message.reply_text(limited.text + "\n" + t("limit.binding_withdraw"),
                                 reply_markup=InlineKeyboardMarkup([[button]]))
        return
    context.user_data[STATE] = {"step": "community"}  # type: ignore[index]
    communities = await asyncio.to_thread(_communities, factory)
    keyboard = [[InlineKeyboardButton(name, callback_data=("bind", "community", code))]
                for code, name in communities]
    await message.reply_text(t("bind.welcome"), reply_markup=InlineKeyboardMarkup(keyboard))


# What an address answer is made of: numbers with place words, estate and place names, fillers.
_PLACE_PARTS = re.compile(r"\d+\s*(?:号楼|号院|号|栋|幢|座|单元|层|楼|室|门|期|区)?|[a-zA-Z]|"
                          r"我家|我住|住在|住|在|是|的|了|呢|啊|吧|哦|小区|社区|家园|花园|公寓|大厦|里|苑|园|村|"
                          r"东|西|南|北|[一二三四五六七八九十]|[\s，。,.!！?？、~～]")
PLACE_SLACK = 6  # characters beyond an address's own words: more, and it is a message, not a place


def says_more_than_a_place(text: str) -> bool:
    """True when a typed answer holds more than an address (a complaint, a cry for help)."""
    return len(_PLACE_PARTS.sub("", normalise(text))) > PLACE_SLACK


def active(context: ContextTypes.DEFAULT_TYPE) -> bool:
    return bool(context.user_data and context.user_data.get(STATE))


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, router: Router,
                  factory: sessionmaker[Session]) -> bool:
    """A typed place while binding; False if it is no place at all (the caller treats it as a report)."""
    message = update.effective_message
    assert message is not None and message.text is not None
    if says_more_than_a_place(message.text):
        return False  # "5号楼厨房着火了": a report (or an emergency) while binding; binding waits
    result = router.by_text(message.text)
    buildings = [c for c in result.candidates if c.kind == "building"]
    if result.status is RouteStatus.matched and buildings and buildings[0].code == result.candidates[0].code:
        await _ask_consent(update, context, buildings[0].code, buildings[0].label)
        return True
    if buildings:
        keyboard = [[InlineKeyboardButton(c.label, callback_data=("bind", "building", c.code))]
                    for c in buildings[:4]]
        await message.reply_text(t("bind.choose"), reply_markup=InlineKeyboardMarkup(keyboard))
        return True
    context.user_data.pop(STATE, None)  # type: ignore[union-attr]
    return False


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE, router: Router,
                      factory: sessionmaker[Session]) -> None:
    message = update.effective_message
    assert message is not None and message.location is not None
    lat, lon = message.location.latitude, message.location.longitude
    result = router.by_point(lat, lon)
    grids = [c.code for c in result.candidates if result.status is not RouteStatus.none]
    nearest = await asyncio.to_thread(_nearest, factory, grids, lat, lon) if grids else []
    if not nearest:
        await message.reply_text(t("bind.location_outside"))
        return
    keyboard = [[InlineKeyboardButton(address, callback_data=("bind", "building", code))]
                for code, address in nearest]
    await message.reply_text(t("bind.choose"), reply_markup=InlineKeyboardMarkup(keyboard))


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: tuple[Any, ...],
                   factory: sessionmaker[Session]) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer()
    _, step, value = data
    if step == "community":
        buildings = await asyncio.to_thread(_buildings, factory, value)
        keyboard = _rows([InlineKeyboardButton(address.replace("小区", ""), callback_data=("bind", "building", code))
                          for code, address in buildings], ROW)
        context.user_data[STATE] = {"step": "building"}  # type: ignore[index]
        await query.edit_message_text(t("bind.pick_building"), reply_markup=InlineKeyboardMarkup(keyboard))
    elif step == "building":
        label = await asyncio.to_thread(_address, factory, value)
        await _ask_consent(update, context, value, label)
    elif step == "consent":
        code, consent = value
        user = update.effective_user
        assert user is not None
        label, bound = await asyncio.to_thread(_bind, factory, user.id, user.full_name, code, consent)
        context.user_data.pop(STATE, None)  # type: ignore[union-attr]
        if not bound:  # the limit was reached meanwhile (another /start finished first)
            await query.edit_message_text(label)
            return
        await query.edit_message_text(t("bind.done", place=label) + "\n"
                                      + t("bind.consent_yes" if consent else "bind.consent_no"))


def _address(factory: sessionmaker[Session], code: str) -> str:
    with session_scope(factory) as s:
        return s.scalars(select(Building.address).where(Building.code == code)).one()


def _bind(factory: sessionmaker[Session], telegram_id: int, name: str, code: str,
          consent: bool) -> tuple[str, bool]:
    """(the place, True) once bound; (why not, False) over the binding limit. Staying in
    one's building without consent (withdrawing it) is never refused."""
    with session_scope(factory) as s:
        building = s.scalars(select(Building).where(Building.code == code)).one()
        person = workflow.person_by_telegram(s, telegram_id)
        withdrawing = person is not None and person.building_id == building.id and not consent
        limited = None if withdrawing else _limited(s, telegram_id)
        if limited is not None:
            return limited.text, False
        workflow.bind_resident(s, telegram_id, name, building.id, consent)
        return f"{building.address}（{building.grid.name}）", True


async def _ask_consent(update: Update, context: ContextTypes.DEFAULT_TYPE, code: str, label: str) -> None:
    context.user_data[STATE] = {"step": "consent"}  # type: ignore[index]
    keyboard = [[InlineKeyboardButton(t("bind.button_agree"), callback_data=("bind", "consent", (code, True)))],
                [InlineKeyboardButton(t("bind.button_refuse"), callback_data=("bind", "consent", (code, False)))]]
    text = t("bind.consent", place=label)
    if update.callback_query is not None:
        await update.callback_query.edit_message_text(text, reply_markup=InlineKeyboardMarkup(keyboard))
    else:
        assert update.effective_message is not None
        await update.effective_message.reply_text(text, reply_markup=InlineKeyboardMarkup(keyboard))
