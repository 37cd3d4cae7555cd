"""Telegram updates as received by getUpdates, kept before Telegram is told they arrived."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class ReceivedUpdate(Base):
    """One update from getUpdates, committed before the next getUpdates acknowledges it
    (bot/polling.py); `processed_at` is set once the Application's handlers have run."""

    __tablename__ = "telegram_updates"
    __table_args__ = (Index("ix_telegram_updates_unprocessed", "processed_at", "update_id"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[dict] = mapped_column(JSON)  # the Update's JSON (Update.to_dict())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
