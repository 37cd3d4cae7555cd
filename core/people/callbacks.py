"""A person to talk to: a resident's callback request (找个人给我打电话 / 转人工 / 我要找网格员).

`request` records it for the resident's grid and sends its card to the grid's workers (privately),
or, when the grid has none on Telegram, to the community's admins. The card shows the resident
masked (董** ****0001) with two buttons: 联系方式 (the full name and phone, only to whom the
permission table gives `callback.handle` at the request's grid, every showing audited as
`callback.contact`) and 已回电 (the request is done; audited as `callback.done`). A second
request while one is open within OPEN_FOR is not filed again. Button data (well under 64 bytes):
"cb:contact:<id>", "cb:done:<id>". Phones never reach a log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, Scope, allowed, scope_of_community, scope_of_grid
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import (
    Building,
    CallbackRequest,
    CallbackState,
    Grid,
    Person,
    Role,
    RoleGrant,
    utcnow,
)
from core.presentation.cards import mask_name, mask_phone

log = logging.getLogger("gridbot.callbacks")
OPEN_FOR = timedelta(hours=24)  # an open request this young is the one a second ask finds
ACTION = "callback.handle"
BUTTONS = ("contact", "done")


def _holders(session: Session, role: Role, **scope: int) -> list[Person]:
    where = [RoleGrant.role == role, Person.telegram_id.is_not(None)]
    where += [getattr(RoleGrant, column) == value for column, value in scope.items()]
    return list(session.scalars(select(Person).join(Person.grants).where(*where).distinct().order_by(Person.id)))


def handlers(session: Session, request: CallbackRequest) -> list[Person]:
    """Who gets the card: the grid's workers, else the community's admins."""
    people = _holders(session, Role.grid_worker, grid_id=request.grid_id) if request.grid_id is not None else []
    if not people and request.community_id is not None:
        people = _holders(session, Role.community_admin, community_id=request.community_id)
    return people


def scope_of(session: Session, request: CallbackRequest) -> Scope:
    if request.grid_id is not None:
        return scope_of_grid(session, request.grid_id)
    return scope_of_community(request.community_id) if request.community_id is not None else Scope()


def card_payload(session: Session, request: CallbackRequest, *, tz: ZoneInfo) -> dict[str, Any]:
    person = session.get(Person, request.person_id)
    assert person is not None
    building = session.get(Building, person.building_id) if person.building_id is not None else None
    at = request.created_at.astimezone(tz).strftime("%m-%d %H:%M")
    text = t("callback.card", id=request.id, name=mask_name(person.display_name),
             phone=mask_phone(person.phone), place=building.address if building else t("card.place_unknown"),
             said=request.said or "", at=at)
    return {"text": text, "buttons": [[{"text": t(f"callback.button_{b}"), "callback_data": f"cb:{b}:{request.id}"}
                                       for b in BUTTONS]]}


def open_request(session: Session, person: Person, now: datetime | None = None) -> CallbackRequest | None:
    since = (now or utcnow()) - OPEN_FOR
    return session.scalar(select(CallbackRequest).where(
        CallbackRequest.person_id == person.id, CallbackRequest.state == CallbackState.open,
        CallbackRequest.created_at >= since).order_by(CallbackRequest.id.desc()).limit(1))


def request(session: Session, person: Person, said: str | None, *, tz: ZoneInfo,
            now: datetime | None = None) -> tuple[CallbackRequest | None, bool]:
    """(the request, True when new); (None, False) when nobody can take it (the resident is not
    bound to a building, so no grid or community is known)."""
    now = now or utcnow()
    earlier = open_request(session, person, now)
    if earlier is not None:
        return earlier, False
    building = session.get(Building, person.building_id) if person.building_id is not None else None
    grid = session.get(Grid, building.grid_id) if building is not None else None
    if grid is None:
        return None, False
    row = CallbackRequest(person_id=person.id, grid_id=grid.id, community_id=grid.community_id,
                          said=(said or "").strip()[:500] or None, state=CallbackState.open, created_at=now)
    session.add(row)
    session.flush()
    card = card_payload(session, row, tz=tz)
    for handler in handlers(session, row):
        assert handler.telegram_id is not None
        enqueue(session, dedupe_key=f"callback:{row.id}:{handler.telegram_id}", kind="card",
                chat_id=handler.telegram_id, payload=card)
    log.info("callback request %s filed (grid %s)", row.id, grid.code)
    return row, True


def _checked(session: Session, request_id: int, person: Person | None) -> CallbackRequest:
    row = session.get(CallbackRequest, request_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotAllowed(t("callback.not_found"))
    if person is None or not allowed(session, person, ACTION, scope_of(session, row)):
        raise NotAllowed(t("callback.deny"))
    return row


def contact(session: Session, request_id: int, person: Person | None) -> str:
    """The resident's full name and phone for a handler of the request; audited each time."""
    row = _checked(session, request_id, person)
    resident = session.get(Person, row.person_id)
    assert resident is not None and person is not None
    audit.record(session, person, "callback.contact", f"callback:{row.id}",
                 {"resident": f"person:{resident.id}", "phone": bool(resident.phone)})
    log.info("contact of callback request %s shown to person %s", row.id, person.id)
    return t("callback.contact", id=row.id, name=resident.display_name,
             phone=resident.phone or t("callback.no_phone"))


def mark_done(session: Session, request_id: int, person: Person | None, *,
              now: datetime | None = None) -> CallbackRequest:
    """已回电: the request is done (a second press says so)."""
    row = _checked(session, request_id, person)
    assert person is not None
    if row.state is CallbackState.done:
        raise NotAllowed(t("callback.already_done"))
    row.state, row.done_at, row.done_by_id = CallbackState.done, now or utcnow(), person.id
    session.flush()
    audit.record(session, person, "callback.done", f"callback:{row.id}", {}, at=row.done_at)
    return row


def parse(data: str) -> tuple[str, int] | None:
    """("done", 12) for "cb:done:12"; None for anything else."""
    parts = data.split(":")
    if len(parts) == 3 and parts[0] == "cb" and parts[1] in BUTTONS and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None
