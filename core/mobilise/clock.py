"""The time the mobilisation flows in chat read: one function, so a test can freeze and move it
(the README's transcript shows times)."""

from __future__ import annotations

from datetime import datetime

from core.models import utcnow


def now() -> datetime:
    return utcnow()
