"""Notices a secretary or admin broadcasts, and one delivery row per recipient."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class BroadcastAudience(str, enum.Enum):
    members = "members"  # the members of one branch
    residents = "residents"  # people whose building is in one grid
    volunteers = "volunteers"  # registered volunteers scoped to a branch/grid (or living there)
    community = "community"  # everyone known in one community (community admins only)


class BroadcastState(str, enum.Enum):
    draft = "draft"
    queued = "queued"  # deliveries exist; the sender starts at `scheduled_at`
    sending = "sending"
    done = "done"
    cancelled = "cancelled"


class DeliveryState(str, enum.Enum):
    pending = "pending"  # waiting for its (next) attempt
    sending = "sending"  # committed right before the send; see core.broadcasts.service on crashes
    sent = "sent"
    blocked = "blocked"  # 403: the user blocked the bot; never retried
    failed = "failed"  # attempts used up, or refused by Telegram (400)
    unconfirmed = "unconfirmed"  # was 'sending' when a sender died: not sent again


class Broadcast(TimestampMixin, Base):
    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_due", "state", "scheduled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), default=None)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"), default=None)
    audience: Mapped[BroadcastAudience] = mapped_column(SAEnum(BroadcastAudience, native_enum=False, length=16))
    text: Mapped[str] = mapped_column(Text, default="")
    photo_file_id: Mapped[str | None] = mapped_column(String(255), default=None)
    document_file_id: Mapped[str | None] = mapped_column(String(255), default=None)
    essential: Mapped[bool] = mapped_column(default=False)
    read_button: Mapped[bool] = mapped_column(default=False)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[BroadcastState] = mapped_column(SAEnum(BroadcastState, native_enum=False, length=16),
                                                  default=BroadcastState.draft)
    # the sender's chat and the message edited with 已发送 n/N
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BroadcastDelivery(Base):
    __tablename__ = "broadcast_deliveries"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "person_id"),
        Index("ix_broadcast_deliveries_due", "broadcast_id", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[DeliveryState] = mapped_column(SAEnum(DeliveryState, native_enum=False, length=16),
                                                 default=DeliveryState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
