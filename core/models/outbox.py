"""Outgoing chat messages, written in the same transaction as the change they announce."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, SmallInteger, String, Text, false
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class SendState(str, enum.Enum):
    """Delivery state, kept apart from whatever the message is about (FixMyStreet's send_state)."""

    pending = "pending"  # waiting for its next attempt
    sending = "sending"  # claimed by a dispatcher until `lease_until`
    sent = "sent"
    failed = "failed"  # permanent: blocked by the user, chat gone, attempts used up
    # A request that may have reached Telegram got no answer (a read timeout, or the
    # dispatcher died while it was in flight). Never sent again, never counted as failed:
    # the Bot API cannot tell whether the chat has it, and a message twice is worse.
    unconfirmed = "unconfirmed"


class OutboxMessage(TimestampMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "send_state", "next_attempt_at"),
                      Index("ix_outbox_chat_kind", "chat_id", "kind"))  # a group's last deadline digest

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
    # A long text goes out in several requests (bot/textsplit.py, a photo first if there is
    # one): how many of them Telegram has confirmed. A retry resumes with the next one.
    pieces_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Committed just before each request and cleared with its answer: a row still in flight
    # when its lease runs out belonged to a dispatcher that died mid-request, and becomes
    # `unconfirmed` instead of due again.
    in_flight: Mapped[bool] = mapped_column(default=False, server_default=false())
    # -1 replies and emergencies, 0 call-outs, 1 cards, notices and reminders, 2 bulk (before the
    # call-out's level, replies were 0; core.messaging.outbox.PRIORITY_*): claims take the most
    # urgent first, and the rate budget serves them first (bot/ratelimit.py).
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    # What `payload` becomes once the row is settled (sent, failed or unconfirmed: no request of
    # it will be made again), for a message that carries a secret: a /web login link is kept
    # only until it has gone out (core.messaging.outbox). SQL NULL (not JSON null) when unset.
    payload_after: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), default=None)
