"""What 共享空间 tells people through the outbox: the manager's card (批准 / 拒绝), the booker's
answer, a no-show and its limit, the reminders, a duty's conflict. Each has its own dedupe key,
so a notice queued twice is sent once."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core.duties.common import fmt_at, hour_minute, stamp, tell_person
from core.messages import t
from core.models import Booking, Person, Space
from core.spaces import access
from core.spaces import buttons as b


def when(row: Booking, tz: ZoneInfo) -> str:
    """12月8日（周二）09:00-10:00"""
    return f"{fmt_at(row.starts_at, tz)}-{hour_minute(row.ends_at, tz)}"


def booker(session: Session, row: Booking) -> str:
    """张三（和平里第一网格党支部）: for the space's managers only."""
    person = session.get(Person, row.person_id) if row.person_id is not None else None
    label = row.organisation or t(f"spaces.booker.{row.booked_as}")
    return t("spaces.booker_line", name=person.display_name if person else t("spaces.nobody"), organisation=label)


def line(session: Session, row: Booking, tz: ZoneInfo) -> str:
    space = session.get(Space, row.space_id)
    return t("spaces.booking_line", space=space.name if space else "", when=when(row, tz), purpose=row.purpose,
             people=row.people, status=t(f"spaces.status.{row.status.value}"))


def approval_card(session: Session, row: Booking, tz: ZoneInfo) -> str:
    space = session.get(Space, row.space_id)
    return t("spaces.to_approve", space=space.name if space else "", when=when(row, tz),
             who=booker(session, row), purpose=row.purpose, people=row.people)


def ask_managers(session: Session, row: Booking, tz: ZoneInfo) -> int:
    """A pending booking's card with 批准 / 拒绝 to each manager of the space; how many."""
    space = session.get(Space, row.space_id)
    assert space is not None
    payload = {"text": approval_card(session, row, tz),
               "buttons": [[b.button(t("spaces.button_approve"), b.APPROVE, row.id),
                            b.button(t("spaces.button_refuse"), b.REFUSE, row.id)]]}
    return sum(tell_person(session, person, f"space-approve:{row.id}:{person.id}", payload, kind="card")
               for person in access.managers(session, space))


def tell_decision(session: Session, row: Booking, tz: ZoneInfo) -> None:
    space = session.get(Space, row.space_id)
    name = space.name if space else ""
    text = (t("spaces.told_approved", space=name, when=when(row, tz)) if row.reason is None
            else t("spaces.told_refused", space=name, when=when(row, tz), reason=row.reason))
    tell_person(session, session.get(Person, row.person_id) if row.person_id else None,
                f"space-decided:{row.id}", {"text": text})


def tell_no_show(session: Session, row: Booking, tz: ZoneInfo, *, count: int, days: int, limit: int,
                 until: datetime | None) -> None:
    space = session.get(Space, row.space_id)
    text = t("spaces.told_no_show", space=space.name if space else "", when=when(row, tz), days=days, n=count)
    if until is not None:
        text += "\n" + t("spaces.told_banned", days=days, limit=limit, until=fmt_at(until, tz))
    tell_person(session, session.get(Person, row.person_id) if row.person_id else None,
                f"space-noshow:{row.id}", {"text": text})


def remind(session: Session, row: Booking, offset: int, tz: ZoneInfo, cancel_hours: float) -> bool:
    """The reminder `offset` minutes before the start (1440 or 60), once per booking and start."""
    space = session.get(Space, row.space_id)
    text = t(f"spaces.remind_{offset}", space=space.name if space else "", when=when(row, tz),
             purpose=row.purpose, hours=f"{cancel_hours:g}")
    return tell_person(session, session.get(Person, row.person_id) if row.person_id else None,
                       f"space-remind:{row.id}:{offset}:{stamp(row.starts_at)}", {"text": text})


def tell_duty_conflict(session: Session, person: Person | None, key: str, *, title: str, at: datetime,
                       space: Space, other: Booking, tz: ZoneInfo) -> bool:
    """A session or shift could not book its space: the secretary hears which booking holds it."""
    text = t("spaces.duty_conflict", title=title, when=fmt_at(at, tz), space=space.name,
             other=f"{when(other, tz)} {other.organisation or t(f'spaces.booker.{other.booked_as}')}")
    return tell_person(session, person, key, {"text": text})
