"""The people behind chat senders: lookup by Telegram id, residents created on first report, binding to a building."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.access.limits import BIND_ACTION
from core.messages import t
from core.models import Building, Person, Role, RoleGrant, Ticket


def person_by_telegram(session: Session, telegram_id: int | None) -> Person | None:
    if telegram_id is None:
        return None
    return session.scalar(select(Person).where(Person.telegram_id == telegram_id))


def _ensure_resident(person: Person) -> None:
    if not any(g.role is Role.resident and g.community_id is None and g.grid_id is None
               and g.branch_id is None for g in person.grants):
        person.grants.append(RoleGrant(role=Role.resident))


def reporter_for(session: Session, telegram_id: int | None, display_name: str) -> Person | None:
    """The person behind a chat sender, created (no building, no consent) on first report."""
    if telegram_id is None:
        return None
    person = person_by_telegram(session, telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, display_name=display_name.strip() or t("actor.resident"))
        _ensure_resident(person)
        session.add(person)
        session.flush()
    return person


def bind_resident(session: Session, telegram_id: int, display_name: str, building_id: int,
                  consent: bool, *, now: datetime | None = None) -> Person:
    """Record where a resident lives and whether handlers may see their contact; re-binding updates
    (and withdrawing consent hides the contact on the tickets they filed before).

    Every binding is audited (resident.bind: whether they moved and consented, never the
    address); core.access.limits counts them for the /start limit.
    """
    if session.get(Building, building_id) is None:
        raise ValueError(f"unknown building id {building_id}")
    person = person_by_telegram(session, telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, display_name=display_name.strip() or t("actor.resident"))
        session.add(person)
    elif display_name.strip() and person.code is None:  # the registry's name wins over Telegram's
        person.display_name = display_name.strip()
    moved = person.building_id != building_id
    person.building_id = building_id
    if person.contact_consent and not consent and person.id is not None:
        # Consent withdrawn: their earlier tickets no longer show handlers who reported them.
        session.execute(update(Ticket).where(Ticket.reporter_id == person.id).values(anonymous=True)
                        .execution_options(synchronize_session="fetch"))
    person.contact_consent = consent
    _ensure_resident(person)
    session.flush()
    audit.record(session, person, BIND_ACTION, f"person:{person.id}",
                 {"moved": moved, "consent": consent}, at=now)
    return person


def first_name(person: Person) -> str:
    """How a handler is named to residents: 张同志, never the full name or phone."""
    name = person.display_name.strip()
    if name and "\u4e00" <= name[0] <= "\u9fff":
        return t("name.comrade", family=name[0])
    return name.split()[0] if name else t("actor.system")


def home_of(session: Session, person: Person) -> Building | None:
    """The building a resident is bound to, if any."""
    return session.get(Building, person.building_id) if person.building_id is not None else None
