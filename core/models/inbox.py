"""Incoming chat messages, kept until the dialogue engine has answered them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, Text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class InboxState(str, enum.Enum):
    pending = "pending"  # accepted from the resident, not yet understood
    done = "done"
    failed = "failed"  # the answer failed every try; the resident was told, the operator logged


class InboxMessage(Base):
    """A resident's message is a row before Rasa sees it: a report accepted is a report kept."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_pending", "state", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(BigInteger, index=True)  # Telegram user id
    chat_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[InboxState] = mapped_column(
        SAEnum(InboxState, native_enum=False, length=16), default=InboxState.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # After a failed answer (an action raised): not tried again before this time.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When a bot process first sent it to Rasa: any process that sends it again (another replica,
    # after the first died before recording the answer) asks Rasa for the earlier answer.
    rasa_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
