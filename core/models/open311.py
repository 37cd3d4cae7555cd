"""Open311 GeoReport v2: the client systems' API keys (hashed) and the requests they filed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class ApiKey(Base):
    """One client system's key. Only its SHA-256 is kept; `prefix` (its first characters, not
    secret on their own) finds the row, and the hash is compared in constant time."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    # The community whose triage queue gets this client's requests that no grid can be found for.
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Open311Request(Base):
    """A ticket filed through Open311: which key filed it, its token, and what the client sent
    that is not the ticket's own (kept for handlers, never published)."""

    __tablename__ = "open311_requests"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    # Contact the reporter consented to keep (contact_consent=true); None without consent.
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    # The client's own photo links: for handlers only (a GET's media_url is always ours).
    media_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
