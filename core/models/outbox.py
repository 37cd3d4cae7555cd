"""Outgoing chat messages, written in the same transaction as the change they announce."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class SendState(str, enum.Enum):
    """Delivery state, kept apart from whatever the message is about (FixMyStreet's send_state)."""

    pending = "pending"  # waiting for its next attempt
    sending = "sending"  # claimed by a dispatcher until `lease_until`
    sent = "sent"
    failed = "failed"  # permanent: blocked by the user, chat gone, attempts used up


class OutboxMessage(TimestampMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "send_state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique per message meaning, e.g. "ticket-card:2026-000123": enqueueing the
    # same key twice keeps one row, so a notice is never queued twice.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    send_state: Mapped[SendState] = mapped_column(
        SAEnum(SendState, native_enum=False, length=16), default=SendState.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
