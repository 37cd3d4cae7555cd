"""A resident's remark on a ticket that does not change its status: an emergency that is over or
was a false alarm, what is still wrong after 不满意. It is an event (who, when, the note; from and
to the ticket's current status), so the history keeps it, and the handlers are told: the branch
group, and for an urgent ticket the community admins as well. Nothing is deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.messaging.outbox import PRIORITY_URGENT, enqueue
from core.models import Person, Ticket, TicketEvent, utcnow
from core.tickets import destinations


def remark(session: Session, ticket: Ticket, person: Person | None, note: str, line: str, *,
           now: datetime | None = None) -> TicketEvent:
    """Record `note` on `ticket` as an event by `person`, and send `line` to its handlers."""
    event = TicketEvent(ticket_id=ticket.id, actor_id=person.id if person else None, at=now or utcnow(),
                        from_status=ticket.status, to_status=ticket.status, note=note, kind="remark")
    session.add(event)
    session.flush()
    priority = PRIORITY_URGENT if ticket.urgent else None
    chats = list(destinations.recipients(session, ticket, destinations.To.branch_group))
    if ticket.urgent or not chats:
        chats += [c for c in destinations.recipients(session, ticket, destinations.To.community_admins)
                  if c not in chats]
    for chat_id in chats:
        enqueue(session, dedupe_key=f"remark:{ticket.id}:{event.id}:{chat_id}", kind="line", chat_id=chat_id,
                payload={"text": line}, priority=priority)
    return event
