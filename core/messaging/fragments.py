"""Fragments: a resident who types a report in pieces ("我们三号楼", "楼道的灯", "不亮了") is read
as one message.

When an action answered a message as only a fragment (its answer carries the FRAGMENT marker,
core.protocol), the bot marks that inbox row (`mark`). Before the same person's next typed
message goes to Rasa, the bot joins to it the fragments just before it (`before`): consecutive
marked rows, each sent within WINDOW of the next. So the classifier and the report form see
"我们三号楼，楼道的灯，不亮了" once, and the chain ends as soon as an answer was not a fragment
(a report started, a question was answered). The buffer is the inbox itself: nothing lives in
the bot process, a restart or a second bot process changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import InboxMessage, InboxState

WINDOW = timedelta(minutes=5)  # between one piece and the next
MAX_PIECES = 8  # joined at most (the message itself included)
MAX_CHARS = 300
SEPARATOR = "，"
_MARK = "fragment"


def mark(session: Session, message_id: int) -> None:
    """The answer to this message said it was only a fragment: join it to the next one."""
    message = session.get(InboxMessage, message_id)
    if message is not None:
        message.meta = {**(message.meta or {}), _MARK: True}


def before(session: Session, sender_id: int, message_id: int, received_at: datetime) -> list[tuple[int, str]]:
    """The fragments to join before message `message_id` of `sender_id`, oldest first."""
    rows = session.scalars(select(InboxMessage).where(InboxMessage.sender_id == sender_id,
                                                      InboxMessage.id < message_id)
                           .order_by(InboxMessage.id.desc()).limit(MAX_PIECES - 1)).all()
    pieces: list[tuple[int, str]] = []
    later, size = received_at, 0
    for row in rows:
        if row.state is not InboxState.done or not (row.meta or {}).get(_MARK) \
                or later - row.received_at > WINDOW or size + len(row.text) > MAX_CHARS:
            break
        pieces.append((row.id, row.text))
        later, size = row.received_at, size + len(row.text)
    return list(reversed(pieces))


def join(pieces: list[str]) -> str:
    return SEPARATOR.join(p.strip(" ，,。") for p in pieces if p.strip(" ，,。"))
