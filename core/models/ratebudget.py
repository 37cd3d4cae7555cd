"""Telegram's rate limits shared by every bot process on one PostgreSQL database (core/ratebudget.py)."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base


class RateBudget(Base):
    """One limit's state as a GCRA "theoretical arrival time": `tat` is the database clock's epoch
    second at which the limit would be back to empty. Keys: "all", "chat:<id>", "group:<id>"."""

    __tablename__ = "rate_budget"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)
