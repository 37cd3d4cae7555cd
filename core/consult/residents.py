"""Who counts as a resident for 议事: anyone may bind to any building, so a vote counts only from
a verified resident — one the registry lists at that building (a person with a registry code),
or one whose current binding a grid worker or secretary confirmed (ResidentCheck)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, allowed, require, scope_of_grid
from core.messages import t
from core.models import Building, Grid, Person, ResidentCheck

VERIFY_ACTION = "resident.verify"
LIST_LIMIT = 10  # bindings per /queren list (one button each)


def is_verified(session: Session, person: Person | None) -> bool:
    if person is None or person.building_id is None:
        return False
    if person.code is not None:  # the registry lists them where they are bound
        return True
    return session.scalar(select(ResidentCheck.id).where(ResidentCheck.person_id == person.id,
                                                         ResidentCheck.building_id == person.building_id)) is not None


def verified_in(session: Session, building_ids: list[int]) -> list[Person]:
    """Every verified resident bound to one of `building_ids`."""
    if not building_ids:
        return []
    people = session.scalars(select(Person).where(Person.building_id.in_(building_ids)).order_by(Person.id))
    return [p for p in people if is_verified(session, p)]


def checking_grids(session: Session, actor: Person | None) -> list[Grid]:
    """The grids where `actor` may confirm bindings (a grid worker's, a secretary's, an admin's)."""
    if actor is None:
        return []
    return [g for g in session.scalars(select(Grid).order_by(Grid.code))
            if allowed(session, actor, VERIFY_ACTION, scope_of_grid(session, g.id))]


def unchecked(session: Session, grids: list[Grid], limit: int = LIST_LIMIT) -> list[tuple[Person, Building]]:
    """Bindings in `grids` nobody confirmed yet, newest first."""
    if not grids:
        return []
    rows = session.execute(select(Person, Building).join(Building, Person.building_id == Building.id)
                           .where(Building.grid_id.in_([g.id for g in grids]), Person.code.is_(None))
                           .order_by(Person.updated_at.desc(), Person.id.desc())).all()
    return [(p, b) for p, b in rows if not is_verified(session, p)][:limit]


def confirm(session: Session, actor: Person | None, person_id: int, building_id: int, *,
            now: datetime) -> Person:
    """Confirm that `person_id` lives in `building_id` (the binding the button showed); refused when
    they moved meanwhile or the actor may not confirm in that grid."""
    person, building = session.get(Person, person_id), session.get(Building, building_id)
    if person is None or building is None or person.building_id != building_id:
        raise NotAllowed(t("consult.check_moved"))
    require(session, actor, VERIFY_ACTION, scope_of_grid(session, building.grid_id))
    assert actor is not None
    if not is_verified(session, person):
        session.add(ResidentCheck(person_id=person.id, building_id=building.id, checked_by_id=actor.id,
                                  checked_at=now))
        session.flush()
        audit.record(session, actor, VERIFY_ACTION, f"person:{person.id}", {"building": building.code}, at=now)
    return person
