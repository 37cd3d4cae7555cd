"""What every duties module shares: the clock, time zones and time texts, the branch and its managers, telling a person."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, allowed, scope_of_branch, scope_of_community
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import (
    AttendanceStatus,
    Branch,
    Grid,
    Person,
    Shift,
    utcnow,
)

A = AttendanceStatus

HORIZON = timedelta(weeks=8)  # how far ahead recurring events are materialised

SHORT_NOTICE = timedelta(hours=24)  # a shift still short this long before its start tells the secretary

EARLY_TOLERANCE = timedelta(minutes=1)  # a reminder job running earlier than this is stale (event moved)


def now_or_utc(now: datetime | None) -> datetime:
    return now or utcnow()


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise NotAllowed(t("duty.deny.bad_tz", tz=name)) from exc


def fmt_at(at: datetime, tz: ZoneInfo) -> str:
    """11月15日（周六）09:00 in `tz`."""
    local = at.astimezone(tz)
    return t("duty.at", month=local.month, day=local.day, weekday=t("duty.weekdays")[local.weekday()],
             time=local.strftime("%H:%M"))


def hour_minute(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def span(minutes: int) -> str:
    """How long until: 2880 → 2天, 1440 → 24小时, 60 → 1小时, 90 → 90分钟, 200 → 3小时 (rounded)."""
    if minutes >= 2880 and minutes % 1440 == 0:
        return t("duty.span_days", n=minutes // 1440)
    if minutes >= 60 and minutes % 60 == 0 or minutes >= 120:
        return t("duty.span_hours", n=round(minutes / 60))
    return t("duty.span_minutes", n=minutes)


def names_of(people: Iterable[Person]) -> str:
    return "、".join(p.display_name for p in people) or t("duty.none")


def insert_ignore(session: Session, model: type[Any], rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: concurrent writers of the same unique row keep one."""
    if not rows:
        return
    session.flush()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(model).values(rows).on_conflict_do_nothing(index_elements=keys))


def tell_person(session: Session, person: Person | None, key: str, payload: dict[str, Any],
          kind: str = "notice") -> bool:
    if person is None or person.telegram_id is None:
        return False
    return enqueue(session, dedupe_key=key, kind=kind, chat_id=person.telegram_id, payload=payload)


def stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y%m%d%H%M")


def require_person(person: Person | None) -> Person:
    if person is None:
        raise NotAllowed(t("duty.deny.unknown_person"))
    return person


def branch_by_id(session: Session, branch_id: int) -> Branch:
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotAllowed(t("duty.deny.branch_not_found"))
    return branch


def may_manage_branch(session: Session, person: Person | None, branch: Branch,
                      action: str = "event.manage") -> bool:
    """The branch's secretary and the admins of its community (PERMISSIONS[action]) schedule
    and see its duties."""
    return person is not None and allowed(session, person, action, scope_of_branch(session, branch))


def require_manager(session: Session, person: Person | None, branch: Branch,
                     action: str = "event.manage") -> Person:
    person = require_person(person)
    if not may_manage_branch(session, person, branch, action):
        raise NotAllowed(t("duty.deny.not_manager"))
    return person


def community_branches(session: Session, community_id: int) -> list[Branch]:
    return list(session.scalars(select(Branch).join(Grid, Grid.id == Branch.grid_id)
                                .where(Grid.community_id == community_id).order_by(Branch.id)))


def may_manage_shift(session: Session, person: Person | None, shift: Shift) -> bool:
    """shift.manage: a branch shift at its branch; a community shift at the community (its
    admins) or at any branch of it (its secretaries)."""
    if person is None:
        return False
    if shift.branch_id is not None:
        return allowed(session, person, "shift.manage", scope_of_branch(session, branch_by_id(session, shift.branch_id)))
    return allowed(session, person, "shift.manage", scope_of_community(shift.community_id)) or any(
        allowed(session, person, "shift.manage", scope_of_branch(session, b))
        for b in community_branches(session, shift.community_id))
