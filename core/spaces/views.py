"""What /yuyue and the command centre show of spaces and bookings, and the days a person types."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.duties.words import named_days
from core.messages import t
from core.models import Community, Space
from core.spaces import access, hours
from core.spaces.booking import Slot
from core.spaces.rules import BUTTON_DAYS


def label(session: Session, space: Space, many_communities: bool) -> str:
    """A space's button: its name, with its community's when the list spans several."""
    if not many_communities:
        return space.name
    community = session.get(Community, space.community_id)
    return t("spaces.label_with_community", community=community.name if community else "", space=space.name)


def labels(session: Session, spaces: list[Space]) -> list[tuple[Space, str]]:
    many = len({s.community_id for s in spaces}) > 1
    return [(s, label(session, s, many)) for s in spaces]


def card(session: Session, space: Space) -> str:
    community = session.get(Community, space.community_id)
    return t("spaces.card", name=space.name, kind=space.kind, community=community.name if community else "",
             address=space.address or t("spaces.unknown"), capacity=space.capacity,
             hours=hours.describe(space.hours), equipment="、".join(space.equipment) or t("spaces.unknown"),
             who=access.who_may(space), approval=t("spaces.needs_approval") if space.needs_approval else "",
             slot=space.slot_minutes)


def day_text(day: date) -> str:
    """12月8日 周二"""
    return t("spaces.day", month=day.month, day=day.day, weekday=t("duty.weekdays")[day.weekday()])


def open_days(space: Space, now: datetime, tz: ZoneInfo) -> list[date]:
    """The next BUTTON_DAYS days (today first) on which the space is open."""
    today = now.astimezone(tz).date()
    days = [today + timedelta(days=i) for i in range(BUTTON_DAYS)]
    return [d for d in days if hours.opening(space.hours, d, tz) is not None]


def slot_text(slot: Slot, tz: ZoneInfo) -> str:
    return f"{slot[0].astimezone(tz):%H:%M}-{slot[1].astimezone(tz):%H:%M}"


def slot_day_text(slot: Slot, tz: ZoneInfo) -> str:
    """12月8日 周二 09:00-10:00"""
    return f"{day_text(slot[0].astimezone(tz).date())} {slot_text(slot, tz)}"


def typed_day(text: str, now: datetime, tz: ZoneInfo) -> date | None:
    """The day a person typed ("明天", "12月8日", "周五"): the project's date words (core.duties.words)."""
    days = named_days(text, now, tz)
    return days[0] if days else None


def in_communities(session: Session, community_ids: set[int]) -> list[Space]:
    return list(session.scalars(select(Space).where(Space.community_id.in_(sorted(community_ids)))
                                .order_by(Space.code)))
