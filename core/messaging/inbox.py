"""The inbox: what residents said, kept until it has been understood and answered.

The bot records a message (`accept`) before it asks Rasa, and marks it `done`
after Rasa answered. When Rasa is unreachable the row stays pending; a
background pass replays pending messages in the order they arrived, per
sender, once Rasa is back — so no report is lost to an outage.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import InboxMessage, InboxState, utcnow

log = logging.getLogger("gridbot.inbox")

# The Rasa sender id of the bot's warm-up conversation after a start (bot/rasa_client.py):
# never a resident, and the actions that file anything do nothing for it.
WARM_UP_SENDER = "gridbot-warm-up"
# A message whose answer failed (an action raised) is tried again after these pauses,
# then given up: the resident is told and the operator sees it (log, `failed` rows).
RETRY_SECONDS = (5, 30, 120, 600)


def accept(session: Session, *, sender_id: int, chat_id: int, text: str,
           meta: dict[str, Any] | None = None) -> InboxMessage:
    """Keep what a person said; the row already kept if this Telegram message was accepted before.

    An update is handled again after a kill between its handling and its mark as processed
    (bot/polling.py): the message, or the button press (its message's id and the same payload),
    is then the row accepted the first time, so Rasa never hears it twice.
    """
    message_id = (meta or {}).get("message_id")
    if message_id is not None:
        for earlier in session.scalars(select(InboxMessage).where(
                InboxMessage.sender_id == sender_id, InboxMessage.chat_id == chat_id,
                InboxMessage.text == text).order_by(InboxMessage.id)):
            if (earlier.meta or {}).get("message_id") == message_id:
                log.info("inbox: message %s of sender %s was accepted before (row %s, %s); not again",
                         message_id, sender_id, earlier.id, earlier.state.value)
                return earlier
    message = InboxMessage(sender_id=sender_id, chat_id=chat_id, text=text, meta=meta or {},
                           state=InboxState.pending, received_at=utcnow())
    session.add(message)
    session.flush()
    return message


def mark_done(session: Session, message_id: int, now: datetime | None = None) -> None:
    message = session.get(InboxMessage, message_id)
    if message is None:
        raise LookupError(f"inbox message {message_id} does not exist")
    message.state = InboxState.done
    message.done_at = now or utcnow()
    message.attempts += 1


def retry_later(session: Session, message_id: int, now: datetime | None = None) -> bool:
    """Count a failed answer; True if the message will be tried again, False if it was given up."""
    message = session.get(InboxMessage, message_id)
    if message is None:
        raise LookupError(f"inbox message {message_id} does not exist")
    now = now or utcnow()
    message.attempts += 1
    if message.attempts > len(RETRY_SECONDS):
        message.state = InboxState.failed
        message.done_at = now
        message.retry_at = None
        return False
    message.retry_at = now + timedelta(seconds=RETRY_SECONDS[message.attempts - 1])
    return True


def note_attempt(session: Session, message_id: int) -> None:
    message = session.get(InboxMessage, message_id)
    if message is not None:
        message.attempts += 1


def note_sent_to_rasa(session: Session, message_id: int, now: datetime | None = None) -> None:
    """The message is about to go to Rasa for the first time: any later sending, by any bot
    process, asks Rasa for the answer it gave then (bot/conversation.py)."""
    message = session.get(InboxMessage, message_id)
    if message is not None and message.rasa_sent_at is None:
        message.rasa_sent_at = now or utcnow()


def pending(session: Session, limit: int = 100, sender_id: int | None = None) -> list[InboxMessage]:
    """Oldest first, so each sender's messages replay in the order they were sent."""
    query = select(InboxMessage).where(InboxMessage.state == InboxState.pending)
    if sender_id is not None:
        query = query.where(InboxMessage.sender_id == sender_id)
    return list(session.scalars(query.order_by(InboxMessage.id).limit(limit)))


def has_pending(session: Session, sender_id: int) -> bool:
    """A new message from a sender with older pending ones must wait behind them."""
    return session.scalar(
        select(InboxMessage.id).where(InboxMessage.sender_id == sender_id,
                                      InboxMessage.state == InboxState.pending).limit(1)
    ) is not None
