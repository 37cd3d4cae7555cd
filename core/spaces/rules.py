"""The booking rules a community may set (README "Configuration"): the cancel cutoff and the
no-show limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# Reminders before a booking starts, in minutes: 24 h and 1 h (core.spaces.reminders).
REMINDERS = (1440, 60)
BOOK_AHEAD_DAYS = 30  # a day further ahead cannot be booked
BUTTON_DAYS = 7  # /yuyue offers the next 7 days as buttons


@dataclass(frozen=True)
class Rules:
    cancel_hours: float = 2  # a booking may be cancelled until this long before its start
    no_show_limit: int = 2  # this many no-shows ...
    no_show_days: int = 90  # ... within this many days ...
    ban_days: int = 30  # ... and the person may not book for this many days

    @property
    def cutoff(self) -> timedelta:
        return timedelta(hours=self.cancel_hours)

    @classmethod
    def of(cls, settings: Any) -> Rules:
        return cls(cancel_hours=settings.spaces_cancel_hours, no_show_limit=settings.spaces_no_show_limit,
                   no_show_days=settings.spaces_no_show_days, ban_days=settings.spaces_ban_days)

KINDS = ("会议室", "活动室", "党群服务中心", "书吧", "其他")  # what a space is (the registry's `kind`)
SLOT_MINUTES = (15, 480)  # the shortest and longest slot a space may be booked in
YES = ("1", "true", "yes", "y", "是", "需要")
NO = ("0", "false", "no", "n", "否", "不需要", "")
