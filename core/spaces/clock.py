"""The time the booking flows read: one function, so tests can set it (slots, cutoffs, no-shows)."""

from __future__ import annotations

from datetime import datetime

from core.models import utcnow


def now() -> datetime:
    return utcnow()
