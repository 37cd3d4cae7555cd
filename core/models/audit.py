"""The audit log: who saw personal data, who broadcast what. Append-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    # what was done, e.g. "ticket.contact", "broadcast.send", "role.grant"
    action: Mapped[str] = mapped_column(String(64), index=True)
    # what it was done to, e.g. "ticket:12", "person:7", "broadcast:3"
    subject: Mapped[str] = mapped_column(String(100))
    # counts and codes only: never a phone number, address or message text
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
