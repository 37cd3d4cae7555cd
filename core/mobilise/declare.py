"""Declaring an incident and calling everyone of its area at once.

`declare` checks the commander on the server (core.mobilise.area.resolve), writes the incident,
its grids and one IncidentCall per person (core.mobilise.people.callees), and queues one outbox
message per person of kind CALL_KIND with the 到 / 稍后到 / 不能到 buttons, dedupe key
"mobilise:call:<incident>:<person>" — all in the caller's transaction, so the call exists exactly
when the incident does and nobody is called twice. How the call is delivered (essential, its
priority, the resend marked 重发) is the outbox's and the dispatcher's business.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import outbox
from core.mobilise import area, buttons, events
from core.mobilise.people import callees
from core.models import AreaLevel, Incident, IncidentCall, IncidentGrid, IncidentKind, Person

CALL_KIND = outbox.CALLOUT  # "mobilise.call": how it is delivered is in core.messaging.outbox.KINDS
ORDER_LIMIT = 300  # characters of a commander's order


def call_key(incident_id: int, person_id: int) -> str:
    return f"mobilise:call:{incident_id}:{person_id}"


def kind_label(kind: IncidentKind | str) -> str:
    return t(f"mobilise.kind.{IncidentKind(kind).value}")


def clean_order(text: str) -> str:
    """A commander's order, one line of words; NotAllowed when empty or too long."""
    text = " ".join(text.split())
    if not text:
        raise NotAllowed(t("mobilise.deny.order_empty"))
    if len(text) > ORDER_LIMIT:
        raise NotAllowed(t("mobilise.deny.order_long", limit=ORDER_LIMIT))
    return text


def answer_buttons(incident_id: int) -> list[list[dict[str, Any]]]:
    return [[buttons.button(t("mobilise.button_coming"), buttons.ANSWER, incident_id, "coming"),
             buttons.button(t("mobilise.button_late"), buttons.ANSWER, incident_id, "late"),
             buttons.button(t("mobilise.button_cannot"), buttons.ANSWER, incident_id, "cannot")]]


def call_text(session: Session, incident: Incident, tz: ZoneInfo) -> str:
    declarer = session.get(Person, incident.declared_by_id) if incident.declared_by_id else None
    return t("mobilise.call", id=incident.id, kind=kind_label(incident.kind), area=area.label(session, incident),
             order=incident.order_text, commander=declarer.display_name if declarer else "",
             at=incident.declared_at.astimezone(tz).strftime("%H:%M"))


def declare(session: Session, person: Person | None, kind: IncidentKind, level: AreaLevel, *,
            ident: int | None = None, grid_ids: list[int] | None = None, order: str, now: datetime,
            tz: ZoneInfo) -> tuple[Incident, int]:
    """Declare the incident and queue its call-out; (the incident, how many people were called)."""
    where = area.resolve(session, person, level, ident, grid_ids)
    assert person is not None
    order = clean_order(order)
    incident = Incident(kind=kind, area=where.level, street_id=where.street_id, community_id=where.community_id,
                        order_text=order, declared_by_id=person.id, declared_at=now)
    session.add(incident)
    session.flush()
    session.add_all(IncidentGrid(incident_id=incident.id, grid_id=g) for g in where.grid_ids)
    people = callees(session, where.grid_ids)
    if people:
        session.execute(insert(IncidentCall), [
            {"incident_id": incident.id, "person_id": c.person_id, "grid_id": c.grid_id, "source": c.source,
             "called_at": now} for c in people])
    payload = {"text": call_text(session, incident, tz), "buttons": answer_buttons(incident.id)}
    queued = outbox.enqueue_many(session, [{"dedupe_key": call_key(incident.id, c.person_id), "chat_id": c.chat_id,
                                            "payload": payload} for c in people], kind=CALL_KIND)
    sources: dict[str, int] = {}
    for c in people:
        sources[c.source] = sources.get(c.source, 0) + 1
    events.record(session, incident.id, "declared", now, actor=person, incident_kind=kind.value, area=where.level.value,
                  grids=len(where.grid_ids))
    events.record(session, incident.id, "called", now, actor=person, people=len(people), queued=queued, **sources)
    audit.record(session, person, "mobilise.declare", f"incident:{incident.id}",
                 {"kind": kind.value, "area": where.level.value, "grids": len(where.grid_ids), "called": len(people)},
                 at=now)
    session.flush()
    return incident, len(people)


def preview(session: Session, person: Person | None, level: AreaLevel, *, ident: int | None = None,
            grid_ids: list[int] | None = None) -> tuple[str, int]:
    """(how the area reads, how many people it would call), checked as `declare` checks it."""
    where = area.resolve(session, person, level, ident, grid_ids)
    return area.label(session, where), len(callees(session, where.grid_ids))
