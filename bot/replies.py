"""Every message a handler sends goes through the outbox, in the transaction of the change.

A handler runs its database work as `work(session, out)` through `respond`: whatever it queues
with `out` (a new message, an edit, buttons removed) is a row of the outbox in that same
transaction — together with the buttons' data (core.messaging.buttons) and the question it leaves open
(core.messaging.prompts) — and is claimed there too, so right after the commit this process sends it
itself through the dispatcher (bot/dispatcher.py), as bot/conversation.py does with Rasa's
answers: no reply waits for a dispatcher pass, and should the process die first, the outbox
sends it when the claim's lease runs out. The one thing sent directly is the answer to a
button press (CallbackQuery.answer), which Telegram wants at once and which no one else sees.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import ContextTypes

from core.access.permissions import NotAllowed
from core.db import session_scope
from core.messages import t
from core.messaging import outbox, prompts

log = logging.getLogger("gridbot.bot.replies")
T = TypeVar("T")
# The Telegram update being handled and how many messages its handlers have queued so far, set
# by bot/polling.py around each update: a handler's messages are then keyed by the update
# ("handler:u<update_id>:<n>"), so an update handled again after a crash (killed after the
# commit, before the update was marked handled) queues nothing twice.
HANDLING: ContextVar[tuple[int, Iterator[int]] | None] = ContextVar("gridbot_handling", default=None)
Buttons = list[list[dict[str, Any]]]


class _Dispatcher(Protocol):
    async def send_claimed(self, items: list[outbox.Claimed]) -> Any: ...


def button(text: str, data: Any) -> dict[str, Any]:
    """A button whose press brings back `data` (any JSON; stored under a token when queued)."""
    return {"text": text, "callback_data": data}


def rows(*buttons: dict[str, Any], per_row: int = 1) -> Buttons:
    return [list(buttons[i:i + per_row]) for i in range(0, len(buttons), per_row)]


class Outgoing:
    """The messages one unit of handler work queues (all in the caller's session)."""

    def __init__(self, session: Session, kind: str = "reply") -> None:
        self.session = session
        self.kind = kind
        self.keys: list[str] = []

    def _queue(self, chat_id: int, payload: dict[str, Any]) -> str:
        handling = HANDLING.get()
        key = (f"handler:u{handling[0]}:{next(handling[1])}" if handling is not None
               else f"handler:{secrets.token_hex(8)}")
        outbox.enqueue(self.session, dedupe_key=key, kind=self.kind, chat_id=chat_id, payload=payload)
        self.keys.append(key)
        return key

    def send(self, chat_id: int, text: str, buttons: Buttons | None = None) -> str:
        """A new message; its dedupe key (see `Delivery.ok`)."""
        return self._queue(chat_id, {"text": text, **({"buttons": buttons} if buttons else {})})

    def send_with(self, chat_id: int, text: str, **extra: Any) -> str:
        """A new message with other payload keys (a photo, a reply keyboard: bot/dispatcher.py)."""
        return self._queue(chat_id, {"text": text, **extra})

    def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons | None = None) -> str:
        """The text (and buttons: none removes them) of a message the bot sent."""
        return self._queue(chat_id, {"edit": message_id, "text": text, **({"buttons": buttons} if buttons else {})})

    def markup(self, chat_id: int, message_id: int, buttons: Buttons | None = None) -> str:
        """Only the buttons of a message the bot sent (none: they go)."""
        return self._queue(chat_id, {"edit": message_id, "markup_only": True,
                                     **({"buttons": buttons} if buttons else {})})

    def claim(self) -> list[outbox.Claimed]:
        return outbox.claim_keys(self.session, self.keys)


class Delivery:
    """How each queued message fared when it was sent at once."""

    def __init__(self, outcomes: dict[str, str]) -> None:
        self.outcomes = outcomes

    def ok(self, key: str) -> bool:
        return self.outcomes.get(key) == "sent"

    def failed(self, key: str) -> bool:
        """Telegram refused it for good (403: the person never started the bot, or blocked it)."""
        return self.outcomes.get(key) == "failed"


def _services(context: ContextTypes.DEFAULT_TYPE) -> Any:
    return context.application.bot_data["services"]


async def respond(context: ContextTypes.DEFAULT_TYPE, work: Callable[[Session, Outgoing], T]) -> tuple[T, Delivery]:
    """Run `work` in one transaction, then send what it queued at once; its result and how the
    messages fared. Exceptions from `work` roll everything back (nothing is sent)."""
    svc = _services(context)
    factory: sessionmaker[Session] = svc.factory

    def unit() -> tuple[T, list[outbox.Claimed]]:
        with session_scope(factory) as session:
            out = Outgoing(session)
            result = work(session, out)
            return result, out.claim()

    result, claimed = await asyncio.to_thread(unit)
    dispatcher: _Dispatcher | None = svc.dispatcher
    if dispatcher is None or not claimed:
        return result, Delivery({})
    stats = await dispatcher.send_claimed(claimed)
    return result, Delivery({c.dedupe_key: stats.outcomes.get(c.id, "error") for c in claimed})


def take_answer(s: Session, out: Outgoing, chat_id: int, user_id: int, kind: str, text: str, *,
                needed: str, cancelled: str) -> bool:
    """A typed answer to the open question `kind`: asked again (`needed`) when it is empty; a
    cancel word closes the question (`cancelled`); True when there is an answer to act on (the
    question is then closed, in the caller's transaction)."""
    if not text:
        out.send(chat_id, t(needed))
        return False
    prompts.clear(s, user_id, kind)
    if text in prompts.CANCEL_WORDS:
        out.send(chat_id, t(cancelled))
        return False
    return True


async def say(context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str, buttons: Buttons | None = None) -> None:
    """Queue and send one message (no other change with it)."""
    await respond(context, lambda _s, out: out.send(chat_id, text, buttons))


def show(out: Outgoing, chat_id: int, message_id: int | None, text: str, buttons: Buttons | None = None) -> None:
    """A pressed step is answered: its message shows `text` (and `buttons`, or none); a press that
    came without its message gets `text` as a new one."""
    if message_id is not None:
        out.edit(chat_id, message_id, text, buttons)
    else:
        out.send(chat_id, text, buttons)


async def answer_press(update: Update, context: ContextTypes.DEFAULT_TYPE,
                       work: Callable[[Session, Outgoing, int, int, int | None], str | None]) -> None:
    """Run a button's `work(s, out, user_id, chat_id, message_id)` in one transaction; what it
    returns, or a refusal's (NotAllowed) reason, is the press's alert."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    chat_id = query.message.chat.id if query.message is not None else user.id
    message_id = query.message.message_id if query.message is not None else None

    def run(s: Session, out: Outgoing) -> str | None:
        try:
            return work(s, out, user.id, chat_id, message_id)
        except NotAllowed as exc:
            log.info("refused a press of user %s", user.id)
            return str(exc)

    alert, _ = await respond(context, run)
    await query.answer(alert or None, show_alert=alert is not None)
