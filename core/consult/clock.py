"""The time the consultation flows read: one function, so tests can freeze it for deadlines."""

from __future__ import annotations

from datetime import datetime

from core.models import utcnow


def now() -> datetime:
    return utcnow()
