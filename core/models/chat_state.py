"""What a chat needs to remember between two updates, kept in the database (not in a process):
the data behind each inline button the bot issued, and the question a person was last asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class IssuedButton(Base):
    """One inline button's data (any JSON) under a short random token; the button carries only
    "b:<token>" (core/messaging/buttons.py). Written in the transaction that queues its message."""

    __tablename__ = "buttons"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    data: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Prompt(Base):
    """The question a Telegram user was last asked and whose answer is their next message
    (core/messaging/prompts.py): a ticket note, a leave reason, a binding step, a /broadcast draft."""

    __tablename__ = "prompts"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
