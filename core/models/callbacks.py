"""A resident's request to be called back by a person (找个人给我打电话 / 转人工 / 找网格员)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class CallbackState(str, enum.Enum):
    open = "open"
    done = "done"


class CallbackRequest(Base):
    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    # Where it is handled: the resident's grid (its grid workers), else their community's admins.
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), default=None)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    # What the resident said when asking (shown on the card; never logged).
    said: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[CallbackState] = mapped_column(SAEnum(CallbackState, native_enum=False, length=8),
                                                 default=CallbackState.open, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
