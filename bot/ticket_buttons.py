"""The buttons on ticket cards (领单 办结 上报社区 退回 联系人, an admin's 发回), the return
visit's two rows (已解决/未解决, 满意/基本满意/不满意), and /tickets with its 指派 and 发回 buttons.

Every press is re-checked by core.tickets.service (core.tickets.assign for 指派 and 发回): who
is pressing, may they do this to this ticket, now. A button's data is a short string
("t:claim:12", "r:12:3", "r:12:y") kept in the database under the token the button carries
(core.messaging.buttons), so data the bot never issued is refused before this module sees it.
办结, 退回, 上报社区 and 发回 need a note (what was done, the reason): the presser is asked for it
in their private chat, the question is a prompt (core.messaging.prompts, committed with the
message that asks it), and their next private message (text, or a photo with a caption) is the
note — also after a restart of the bot. 指派 sends the presser the branch's members as buttons
(["ta", ticket, person]); the member picked is told privately.

/tickets: a secretary's (grid worker's) open tickets of their branch by state with their time
limits, and for a community admin the tickets escalated to the community with the reasons.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import Buttons, Outgoing, button, respond, take_answer
from core.access import tickets as ticket_access
from core.access.permissions import NotAllowed
from core.db import session_scope
from core.messages import t
from core.messaging import prompts
from core.models import TicketStatus
from core.people import residents
from core.presentation import callbacks, cards
from core.tickets import assign as ticket_assign
from core.tickets import lifecycle, ratings, transfer
from core.tickets import service as ticket_service

log = logging.getLogger("gridbot.bot.tickets")

NOTE_ACTIONS = {"resolve", "reject", "escalate", "return", "merge"}
PICK = "ta"  # data of a member button of 指派: ["ta", ticket id, person id] (core.messaging.buttons)
GRID = "tt"  # data of a grid button of 改派: ["tt", ticket id, grid id]


class Refused(Exception):
    pass


def as_person(s: Session, user_id: int, fn: Callable[..., Any], ticket_id: int, *args: Any) -> Any:
    """Call a workflow function as the person behind `user_id`; Refused says why not."""
    person = residents.person_by_telegram(s, user_id)
    if person is None:
        raise Refused(t("ticket.unknown_person"))
    try:
        return fn(s, ticket_id, person, *args)
    except NotAllowed as exc:
        raise Refused(str(exc)) from exc


def _run(factory: sessionmaker[Session], user_id: int, fn: Callable[..., Any], ticket_id: int,
         *args: Any) -> Any:
    """`as_person` in a transaction of its own."""
    with session_scope(factory) as s:
        return as_person(s, user_id, fn, ticket_id, *args)


def _check(s: Session, ticket_id: int, person: Any, action: str) -> str:
    ticket = lifecycle.get_by_id(s, ticket_id)
    if ticket is None:
        raise NotAllowed(t("ticket.not_found"))
    if action == "return":
        ticket_assign.check_return(s, person, ticket)
    else:
        ticket_access.check(s, person, action, ticket)
    return ticket.number


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, parsed: callbacks.TicketPress,
                   factory: sessionmaker[Session], tz: ZoneInfo) -> bool:
    """Handle a ticket button; True when something was queued for sending."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    action, ticket_id, score = parsed
    try:
        if action == "claim":
            await asyncio.to_thread(_run, factory, user.id, ticket_service.claim, ticket_id)
            await query.answer(t("ticket.claimed_toast"))
        elif action == "take":
            await asyncio.to_thread(_run, factory, user.id, transfer.take_over, ticket_id)
            await query.answer(t("take.toast"))
        elif action == "urge":
            counted = await asyncio.to_thread(_run, factory, user.id, ticket_service.urge, ticket_id)
            await query.answer(t("deadline.urge_toast" if counted else "deadline.urge_again"))
            return bool(counted)
        elif action == "assign":
            def pick(s: Session, out: Outgoing) -> str:
                ticket, members = as_person(s, user.id, ticket_assign.assignees, ticket_id)
                if not members:
                    raise Refused(t("ticket.no_assignee"))
                return out.send(user.id, t("ticket.pick_assignee", number=ticket.number, category=ticket.category.name,
                                           place=cards.place(s, ticket)),
                                [[button(residents.first_name(m) + f" {m.display_name}", [PICK, ticket_id, m.id])]
                                 for m in members])

            return await _in_private(update, context, pick)
        elif action == "transfer":
            def grids(s: Session, out: Outgoing) -> str:
                ticket, found = as_person(s, user.id, transfer.targets, ticket_id)
                if not found:
                    raise Refused(t("transfer.no_grids"))
                return out.send(user.id, t("transfer.pick_grid", number=ticket.number, category=ticket.category.name,
                                           place=cards.place(s, ticket)),
                                [[button(t("transfer.grid_button", grid=g.name, community=c.name), [GRID, ticket_id, g.id])]
                                 for g, c in found[:ticket_assign.LIST_LIMIT]])

            return await _in_private(update, context, grids)
        elif action == "contact":
            details = await asyncio.to_thread(_run, factory, user.id, ticket_service.contact_details, ticket_id)
            await query.answer(details, show_alert=True)
            return False
        elif action in ("rate", "solved"):
            # core.tickets.ratings: one answer of the return visit; after 未解决 the presser is asked
            # what is still wrong (a prompt)
            answer = {"score": score} if action == "rate" else {"solved": bool(score)}
            answered = await asyncio.to_thread(_run, factory, user.id, partial(ratings.answer, tz=tz, **answer),
                                               ticket_id)
            await query.answer(t("visit.more_toast" if answered.missing else "visit.done_toast"))
            number, rest = answered.ticket.number, cards.visit_buttons(ticket_id, answered.missing)
            if query.message is not None:  # the answered row goes; the other stays until answered
                chat_id, message_id = query.message.chat.id, query.message.message_id

                def done(_s: Session, out: Outgoing) -> None:
                    out.markup(chat_id, message_id, rest or None)
                    if answered.reopened:
                        out.send(user.id, t("rating.ask_reason", number=number))
                await respond(context, done)
        else:  # resolve / reject / escalate / return: ask for the note in private
            def ask(s: Session, out: Outgoing) -> str:
                number = as_person(s, user.id, _check, ticket_id, action)
                prompts.ask(s, user.id, prompts.NOTE, {"action": action, "ticket": ticket_id})
                return out.send(user.id, t(f"ticket.ask_{action}", number=number))

            key, delivery = await respond(context, ask)
            if delivery.failed(key):  # the presser never opened a private chat with the bot
                await asyncio.to_thread(_forget, factory, user.id)
                await query.answer(t("ticket.start_private_first"), show_alert=True)
                return False
            await query.answer(None if _private(update) else t("ticket.see_private"))
            return False
    except Refused as exc:
        log.info("refused %s on ticket %s by user %s", action, ticket_id, user.id)
        await query.answer(str(exc), show_alert=True)
        return False
    return True


async def _in_private(update: Update, context: ContextTypes.DEFAULT_TYPE,
                      work: Callable[[Session, Outgoing], str]) -> bool:
    """Send the presser a private message (`work` queues it and returns its key); the press is
    answered with where to look, or with why nothing came (no private chat with the bot yet)."""
    query = update.callback_query
    assert query is not None
    key, delivery = await respond(context, work)
    if delivery.failed(key):
        await query.answer(t("ticket.start_private_first"), show_alert=True)
        return False
    await query.answer(None if _private(update) else t("ticket.see_private"))
    return False


def _forget(factory: sessionmaker[Session], user_id: int) -> None:
    with session_scope(factory) as s:
        prompts.clear(s, user_id, prompts.NOTE)


async def on_note(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: prompts.Asked) -> None:
    """The presser's note for 办结 / 退回 / 上报社区 / 发回 (the open prompt `asked`): the ticket
    changes, or the presser hears why not; the prompt goes with the reply, unless the note was empty."""
    tz = _tz(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    action, ticket_id = str(asked.value["action"]), int(asked.value["ticket"])
    note = (message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None
    chat_id = message.chat_id

    def answer(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.NOTE, note,
                           needed="ticket.note_needed", cancelled="ticket.note_cancelled"):
            return
        try:
            done = t(f"ticket.{action}_done") if action in ("resolve", "escalate", "return") else ""
            if action == "resolve":
                as_person(s, user.id, ticket_service.resolve, ticket_id, note, photo)
            elif action == "escalate":
                as_person(s, user.id, partial(ticket_service.escalate, tz=tz), ticket_id, note)
            elif action == "return":
                as_person(s, user.id, partial(ticket_assign.return_to_branch, tz=tz), ticket_id, note)
            elif action == "transfer":
                ticket = as_person(s, user.id, partial(transfer.transfer, tz=tz), ticket_id, int(asked.value["grid"]),
                                   note)
                done = t("transfer.done", grid=transfer.grid_name(s, ticket.grid_id))
            elif action == "merge":
                duplicate, original = as_person(s, user.id, partial(transfer.merge, tz=tz), ticket_id, note)
                done = t("merge.done", duplicate=duplicate.number, original=original.number)
            else:
                ticket = as_person(s, user.id, partial(ticket_service.reject, tz=tz), ticket_id, note)
                done = t("triage.done" if ticket.status is TicketStatus.triage else "ticket.reject_done")
        except Refused as exc:
            out.send(chat_id, str(exc))
            return
        out.send(chat_id, done)

    await respond(context, answer)


def _tz(context: ContextTypes.DEFAULT_TYPE) -> ZoneInfo:
    return context.application.bot_data["services"].settings.tz


def _private(update: Update) -> bool:
    message = update.callback_query.message if update.callback_query is not None else None
    return message is not None and message.chat.type == "private"


# -- 指派: the member picked; 改派: the grid picked ---------------------------------------------

def is_pick(data: object) -> bool:
    return (isinstance(data, list) and len(data) == 3 and data[0] in (PICK, GRID)
            and isinstance(data[1], int) and isinstance(data[2], int))


async def on_grid(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    """A grid button of 改派: the presser is asked for the reason (a prompt; their next private
    message), after the transfer is checked once already, so a refusal comes before the typing."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    ticket_id, grid_id = int(data[1]), int(data[2])

    def ask(s: Session, out: Outgoing) -> str | None:
        try:
            ticket, found = as_person(s, user.id, transfer.targets, ticket_id)
            grid = next((g for g, _ in found if g.id == grid_id), None)
            if grid is None:  # a button of an earlier list: say why not
                person = residents.person_by_telegram(s, user.id)
                assert person is not None
                transfer.check_target(s, ticket, person, transfer.grid_of(s, grid_id))
                raise Refused(t("transfer.deny.no_grid"))
        except (Refused, NotAllowed) as exc:
            return str(exc)
        prompts.ask(s, user.id, prompts.NOTE, {"action": "transfer", "ticket": ticket_id, "grid": grid_id})
        out.send(user.id, t("transfer.ask_note", number=ticket.number, grid=grid.name))
        return None

    refused, _ = await respond(context, ask)
    await query.answer(refused, show_alert=refused is not None)


async def on_pick(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    """A member button of 指派 (`is_pick(data)`): the ticket is assigned, or the presser hears why not."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    if data[0] == GRID:
        await on_grid(update, context, data)
        return
    ticket_id, person_id = int(data[1]), int(data[2])
    message = query.message
    tz = _tz(context)

    def work(s: Session, out: Outgoing) -> str | None:
        try:
            ticket = as_person(s, user.id, partial(ticket_assign.assign, tz=tz), ticket_id, person_id)
        except Refused as exc:
            return str(exc)
        done = t("ticket.assign_done", name=ticket_assign.claimer_name(s, ticket))
        if message is not None:
            out.edit(message.chat.id, message.message_id, f"{ticket.number}：{done}")
        else:
            out.send(user.id, done)
        return None

    refused, _ = await respond(context, work)
    if refused is not None:
        log.info("refused an assignment of ticket %s by user %s", ticket_id, user.id)
        await query.answer(refused, show_alert=True)
        return
    await query.answer()


# -- /tickets ---------------------------------------------------------------------------------

def tickets_reply(s: Session, user_id: int, tz: ZoneInfo) -> tuple[str, Buttons]:
    """The text and buttons of /tickets for the person behind `user_id`."""
    person = residents.person_by_telegram(s, user_id)
    if person is None:
        return t("deny.unknown_person"), []
    listings = ticket_assign.branch_listing(s, person, tz=tz)
    escalated = ticket_assign.escalated_listing(s, person, tz=tz)
    triage = ticket_assign.triage_listing(s, person, tz=tz)
    if not listings and not escalated:
        return t("tickets.not_allowed"), []
    parts, rows = [], []
    for listing in triage:
        parts.append("\n".join([listing.title, *listing.lines]))
        rows += [[button(t("ticket.button_transfer", number=x.number), callbacks.ticket_action("transfer", x.id))]
                 for x in listing.tickets]
    for listing in escalated:
        parts.append("\n".join([listing.title, *listing.lines]))
        rows += [[button(t("ticket.button_return", number=x.number), callbacks.ticket_action("return", x.id))]
                 for x in listing.tickets]
    for listing in listings:
        parts.append("\n".join([listing.title, *listing.lines]))
        rows += [[button(t("ticket.button_assign", number=x.number), callbacks.ticket_action("assign", x.id))]
                 for x in listing.tickets]
    return "\n\n".join(parts), rows[:ticket_assign.LIST_LIMIT]


async def on_tickets(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id, tz = message.chat_id, _tz(context)

    def work(s: Session, out: Outgoing) -> None:
        text, rows = tickets_reply(s, user.id, tz)
        out.send(chat_id, text, rows or None)

    await respond(context, work)
