"""Where a ticket goes when its branch is the wrong one: 改派, the community's triage queue, 接手, 合并.

首接负责: whoever receives a ticket answers for it until someone else has it.
- `transfer` (改派): a branch (or the community, or the street) sends the ticket to another grid
  with a reason. It arrives there accepted and unclaimed, as a new ticket does, with the card and
  the reason; the first branch hears that it went and keeps seeing it under 已转出 in /tickets
  (`transferred_out`) until it is finished; the residents hear where it went. The limits do not
  start again (the resident's wait does not), and the ticket counts for the grid it is in now.
  A grid of another community only for a street admin of the street both are on.
- `reject` (退回, core.tickets.service.reject): a branch's 退回 puts the ticket in its community's
  triage queue (status `triage`), with the reason and whose matter it is; the admins get the card
  with 改派 / 发回 / 接手 / 不予受理 (the admin's 退回, final) / 合并, and /tickets lists the queue
  (`triage_listing`). Nothing is rejected into the void by a branch alone.
- `take_over` (接手): a community (or street) admin takes the ticket themselves; whoever had it
  is released and told.
- `merge` (合并): a duplicate points at its original (status `duplicate`), its reporter and
  followers follow the original, the original's history records the merge, and the residents of
  both hear of it.

Every change locks the ticket's row, checks permission (core.access.permissions: ticket.transfer,
ticket.take, ticket.merge) and state afresh, and appends events in the caller's transaction; every
notice is an outbox row keyed by the event it announces.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import tickets as ticket_access
from core.access.permissions import NotAllowed, allowed, roles_at, scope_of_grid
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import (
    Community,
    Grid,
    Person,
    Role,
    Ticket,
    TicketEvent,
    TicketFollower,
    TicketStatus,
    utcnow,
)
from core.people.residents import first_name
from core.presentation import cards
from core.tickets import destinations, service
from core.tickets.lifecycle import TRANSFERABLE, change_status, get_by_number, transfer_grid

S = TicketStatus
TAKEABLE = frozenset({S.new, S.accepted, S.claimed, S.escalated, S.triage, S.reopened})
MERGEABLE = frozenset({S.new, S.accepted, S.claimed, S.escalated, S.triage, S.reopened})
FINISHED = frozenset({S.closed, S.rejected, S.duplicate, S.withdrawn})
OUT_DAYS = 30  # how long a branch sees a ticket it transferred out (while it is open)


def _ticket(session: Session, ticket_id: int, person: Person | None, action: str) -> tuple[Ticket, Person]:
    ticket = service.ticket_for_change(session, ticket_id, lock=True)
    ticket_access.check(session, person, action, ticket)
    assert person is not None  # check() refuses nobody
    return ticket, person


def grid_of(session: Session, grid_id: int) -> Grid | None:
    return session.get(Grid, grid_id)


def grid_name(session: Session, grid_id: int | None) -> str:
    grid = session.get(Grid, grid_id) if grid_id is not None else None
    return grid.name if grid is not None else t("card.place_unknown")


# -- 改派 ----------------------------------------------------------------------------------


def _street_admin_at(session: Session, person: Person, grid: Grid) -> bool:
    return bool(roles_at(session, person, scope_of_grid(session, grid.id)) & {Role.street_admin, Role.operator})


def check_target(session: Session, ticket: Ticket, person: Person, grid: Grid | None) -> Grid:
    """Refuse (NotAllowed, with the reason) a transfer to nowhere, to the ticket's own grid, or out of
    its community for anyone but a street admin of the grid's street (or an operator)."""
    if grid is None:
        raise NotAllowed(t("transfer.deny.no_grid"))
    if grid.id == ticket.grid_id:
        raise NotAllowed(t("transfer.deny.same_grid", grid=grid.name))
    community = ticket_access.community_id_of(session, ticket)
    if community is not None and grid.community_id != community and not _street_admin_at(session, person, grid):
        raise NotAllowed(t("transfer.deny.other_community", grid=grid.name))
    return grid


def targets(session: Session, ticket_id: int, person: Person | None) -> tuple[Ticket, list[tuple[Grid, Community]]]:
    """The ticket and the grids `person` may transfer it to: its community's other grids, and for a
    street admin every grid of the street's communities."""
    ticket = service.ticket_for_change(session, ticket_id)
    ticket_access.check(session, person, "transfer", ticket)
    assert person is not None
    if ticket.status not in TRANSFERABLE:
        raise NotAllowed(t("transfer.deny.state", status=cards.status_name(ticket.status)))
    rows = session.execute(select(Grid, Community).join(Community, Community.id == Grid.community_id)
                           .order_by(Community.code, Grid.code)).all()
    out = []
    for grid, community in rows:
        try:
            check_target(session, ticket, person, grid)
        except NotAllowed:
            continue
        out.append((grid, community))
    return ticket, out


def transfer(session: Session, ticket_id: int, actor: Person | None, grid_id: int, reason: str, *, tz: ZoneInfo,
             now: datetime | None = None) -> Ticket:
    """改派 to `grid_id` with `reason`: the new branch gets the card, the old one a line, residents a notice."""
    now = now or utcnow()
    ticket, actor = _ticket(session, ticket_id, actor, "transfer")
    if ticket.status not in TRANSFERABLE:
        raise NotAllowed(t("transfer.deny.state", status=cards.status_name(ticket.status)))
    grid = check_target(session, ticket, actor, session.get(Grid, grid_id))
    if not (reason and reason.strip()):
        raise NotAllowed(t("transfer.deny.note"))
    old_group = destinations.recipients(session, ticket, destinations.To.branch_group)
    old_claimer = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    from_grid = grid_name(session, ticket.grid_id)
    event = transfer_grid(session, ticket, grid, actor=actor, note=reason, now=now)
    handler = first_name(actor)
    line = {"text": t("transfer.line_out", number=ticket.number, handler=handler, grid=grid.name, note=event.note)}
    for chat_id in old_group:
        enqueue(session, dedupe_key=f"transfer-out:{event.id}:{chat_id}", kind="line", chat_id=chat_id,
                payload=line, priority=service.priority_of(ticket))
    if old_claimer is not None and old_claimer.telegram_id is not None and old_claimer.id != actor.id:
        enqueue(session, dedupe_key=f"transfer-out:{event.id}:{old_claimer.telegram_id}", kind="notice",
                chat_id=old_claimer.telegram_id, payload=line, priority=service.priority_of(ticket))
    lead = t("card.transferred", number=ticket.number, from_grid=from_grid, handler=handler, note=event.note)
    _cards_to_new_grid(session, ticket, event, lead, tz=tz)
    service.tell_residents(session, ticket, event, "transferred",
                           {"text": t("transfer.notify", number=ticket.number, grid=grid.name)})
    return ticket


def _cards_to_new_grid(session: Session, ticket: Ticket, event: TicketEvent, lead: str, *, tz: ZoneInfo) -> None:
    """The card, as a new ticket's goes (core.tickets.destinations), with the transfer on top."""
    for destination in destinations.for_new_ticket(destinations.situation(session, ticket)):
        admin = destination.to in (destinations.To.community_admins, destinations.To.every_admin)
        card = cards.card_payload(session, ticket, tz=tz, lead=lead, admin=admin)
        for chat_id in destinations.recipients(session, ticket, destination.to):
            enqueue(session, dedupe_key=f"transfer-in:{destination.to.value}:{event.id}:{chat_id}", kind="card",
                    chat_id=chat_id, payload=card, priority=service.priority_of(ticket))


def transferred_out(session: Session, grid_id: int, *, now: datetime | None = None) -> list[tuple[Ticket, str]]:
    """Open tickets transferred out of `grid_id` in the last OUT_DAYS days (and not back since),
    with the grid each is in now: 首接负责, the first branch still sees where they went."""
    now = now or utcnow()
    rows = session.execute(select(TicketEvent.ticket_id, TicketEvent.detail).join(Ticket, Ticket.id == TicketEvent.ticket_id)
                           .where(TicketEvent.kind == "transfer", TicketEvent.at >= now - timedelta(days=OUT_DAYS),
                                  Ticket.status.not_in(FINISHED), Ticket.grid_id != grid_id)
                           .order_by(TicketEvent.id)).all()
    ids = list(dict.fromkeys(ticket_id for ticket_id, detail in rows if (detail or {}).get("from") == grid_id))
    tickets = [session.get(Ticket, i) for i in ids]
    return [(x, grid_name(session, x.grid_id)) for x in tickets if x is not None]


# -- 接手 ---------------------------------------------------------------------------------


def take_over(session: Session, ticket_id: int, actor: Person | None, *, now: datetime | None = None) -> Ticket:
    """接手: the admin claims the ticket; whoever had it is released (an event of its own) and told."""
    now = now or utcnow()
    ticket, actor = _ticket(session, ticket_id, actor, "take")
    if ticket.claimed_by_id == actor.id and ticket.status is S.claimed:
        raise NotAllowed(t("take.deny.already"))
    if ticket.status not in TAKEABLE:
        raise NotAllowed(t("take.deny.state", status=cards.status_name(ticket.status)))
    before = session.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    handler = first_name(actor)
    if ticket.status in (S.claimed, S.new):  # released (or placed) first, so the history says so
        change_status(session, ticket, S.accepted, actor=actor, note=t("take.line", number=ticket.number,
                                                                       handler=handler), now=now)
    event = change_status(session, ticket, S.claimed, actor=actor, note=t("take.line", number=ticket.number,
                                                                          handler=handler), now=now)
    service.tell_residents(session, ticket, event, "claimed",
                           {"text": t("notify.claimed", number=ticket.number, handler=handler)})
    service.tell_branch(session, ticket, event, {"text": event.note})
    if before is not None and before.id != actor.id and before.telegram_id is not None:
        enqueue(session, dedupe_key=f"taken:{event.id}:{before.telegram_id}", kind="notice",
                chat_id=before.telegram_id, payload={"text": t("take.notice", number=ticket.number, handler=handler)})
    return ticket


# -- 合并 ---------------------------------------------------------------------------------


def merge(session: Session, ticket_id: int, actor: Person | None, original_number: str, *, tz: ZoneInfo,
          now: datetime | None = None) -> tuple[Ticket, Ticket]:
    """合并: `ticket_id` is a duplicate of the ticket numbered `original_number`. Returns (duplicate, original)."""
    now = now or utcnow()
    duplicate, actor = _ticket(session, ticket_id, actor, "merge")
    number = (original_number or "").strip()
    original = get_by_number(session, number)
    if original is None:
        raise NotAllowed(t("merge.deny.not_found", number=number or "—"))
    if original.id == duplicate.id:
        raise NotAllowed(t("merge.deny.same"))
    if duplicate.status not in MERGEABLE:
        raise NotAllowed(t("merge.deny.state", status=cards.status_name(duplicate.status)))
    original = service.ticket_for_change(session, original.id, lock=True)
    if original.status is S.duplicate and original.duplicate_of_id is not None:
        first = session.get(Ticket, original.duplicate_of_id)
        raise NotAllowed(t("merge.deny.original_duplicate", number=original.number,
                           original=first.number if first else ""))
    if original.status in FINISHED:
        raise NotAllowed(t("merge.deny.original_closed", number=original.number,
                           status=cards.status_name(original.status)))
    if not allowed(session, actor, "ticket.merge", ticket_access.scope_of_ticket(session, original)):
        raise NotAllowed(t("merge.deny.other_community", number=original.number))
    event = change_status(session, duplicate, S.duplicate, actor=actor, duplicate_of=original, now=now,
                          note=t("merge.note_duplicate", original=original.number))
    joined = TicketEvent(ticket_id=original.id, actor_id=actor.id, at=now, from_status=original.status,
                         to_status=original.status, note=t("merge.note_original", duplicate=duplicate.number),
                         kind="merge", detail={"duplicate": duplicate.id})
    session.add(joined)
    session.flush()
    # the original's residents first (before the duplicate's join them), then the duplicate's
    service.tell_residents(session, original, joined, "merged", {"text": t(
        "merge.notify_original", duplicate=duplicate.number, original=original.number)})
    service.tell_residents(session, duplicate, event, "merged", {"text": t(
        "merge.notify_duplicate", original=original.number)})
    _follow(session, original, [duplicate.reporter_id, *ticket_access.follower_ids(session, duplicate)])
    line: dict[str, Any] = {"text": t("merge.line", duplicate=duplicate.number, original=original.number,
                                      handler=first_name(actor))}
    service.tell_branch(session, duplicate, event, line)
    if original.grid_id != duplicate.grid_id:
        service.tell_branch(session, original, joined, line)
    return duplicate, original


def _follow(session: Session, ticket: Ticket, person_ids: list[int | None]) -> None:
    present = {ticket.reporter_id, *ticket_access.follower_ids(session, ticket)}
    for person_id in dict.fromkeys(p for p in person_ids if p is not None):
        if person_id not in present:
            session.add(TicketFollower(ticket_id=ticket.id, person_id=person_id))
    session.flush()
