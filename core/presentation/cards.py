"""What a ticket looks like in chat: the card, its buttons, the history, masked names and phones.

Texts come from data/messages/zh.yml; button data from core.presentation.callbacks.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core.access.tickets import follower_ids
from core.messages import t
from core.models import Building, Landmark, Person, Ticket, TicketStatus
from core.people.residents import first_name
from core.presentation import callbacks
from core.tickets.lifecycle import events_of


def mask_name(name: str) -> str:
    return (name.strip()[:1] or "*") + "**"


PHONE_SHOWN = 4  # at most the last four digits of a phone are ever shown
PHONE_HIDDEN = 4  # and at least four stay hidden, so a short number is never shown whole


def mask_phone(phone: str | None) -> str:
    """A phone as the ticket card shows it: "****" and at most its last four digits.

    Only digits count (spaces, dashes, "+86" and full-width digits are read as digits);
    at least PHONE_HIDDEN of them stay hidden, so a 7-digit number shows its last three
    and a 4-digit one none. The mask has a fixed width and does not tell the length.
    """
    if phone is None or not phone.strip():
        return t("card.no_phone")
    digits = "".join(str(unicodedata.decimal(c)) for c in phone if c.isdecimal())
    shown = max(0, min(PHONE_SHOWN, len(digits) - PHONE_HIDDEN))
    return "****" + (digits[-shown:] if shown else "")


def local_time(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M") if at else t("card.no_due")


def status_name(status: TicketStatus) -> str:
    return t(f"status.{status.value}")


def status_label(ticket: Ticket) -> str:
    """The ticket's status as a resident or handler reads it in a list: 处理中（已超期）."""
    return status_name(ticket.status) + (t("status.overdue_mark") if ticket.overdue_at else "")


def place(session: Session, ticket: Ticket) -> str:
    """Where the ticket is: its building, landmark or the words the resident used."""
    building = session.get(Building, ticket.building_id) if ticket.building_id else None
    landmark = session.get(Landmark, ticket.landmark_id) if ticket.landmark_id else None
    return (building.address if building else landmark.name if landmark else None) \
        or ticket.location_text or t("card.place_unknown")


def _reporter_masked(session: Session, ticket: Ticket) -> str:
    reporter = session.get(Person, ticket.reporter_id) if ticket.reporter_id else None
    if reporter is None or ticket.anonymous:
        return t("card.anonymous")
    return f"{mask_name(reporter.display_name)} {mask_phone(reporter.phone)}"


def card_payload(session: Session, ticket: Ticket, *, tz: ZoneInfo,
                 lead: str | None = None, admin: bool = False) -> dict[str, Any]:
    """The ticket card for the branch group: masked reporter, the handler buttons (领单 办结 上报社区
    改派 退回 联系人). An admin's copy (`admin`) has 接手 for 领单, no 上报社区 (the admin is the
    community), 发回 once escalated or returned to the community (triage), and 合并."""
    text = t("card.text", urgent=(t("card.urgent") if ticket.urgent else "") + (t("card.overdue") if ticket.overdue_at else ""),
             number=ticket.number,
             status=status_name(ticket.status), category=ticket.category.name,
             place=place(session, ticket), description=ticket.description,
             reporter=_reporter_masked(session, ticket),
             respond_due=local_time(ticket.respond_due_at, tz), resolve_due=local_time(ticket.resolve_due_at, tz))

    def button(action: str) -> dict[str, str]:
        return {"text": t(f"card.button_{action}"), "callback_data": callbacks.ticket_action(action, ticket.id)}

    if admin:  # the community: 接手 rather than 领单, 发回 what came up to it, 不予受理 (退回), 合并
        back = [button("return")] if ticket.status in (TicketStatus.escalated, TicketStatus.triage) else []
        rows = [[button("take"), button("resolve")], [*back, button("transfer"), button("reject")],
                [button("contact"), button("merge")]]
    else:
        rows = [[button("claim"), button("resolve")], [button("escalate"), button("transfer"), button("reject")],
                [button("contact")]]
    payload: dict[str, Any] = {"text": f"{lead}\n\n{text}" if lead else text, "buttons": rows}
    if ticket.photo_file_ids:
        payload["photo"] = ticket.photo_file_ids[0]
    return payload


VISIT_QUESTIONS = ("solved", "score")  # the return visit's two rows: 已解决/未解决, 满意/基本满意/不满意


def visit_buttons(ticket_id: int, questions: tuple[str, ...] = VISIT_QUESTIONS) -> list[list[dict[str, str]]]:
    """One row of buttons per question of the return visit still to answer (core.tickets.visit)."""
    rows = {"solved": [{"text": t(f"visit.solved_{int(yes)}"), "callback_data": callbacks.solved(ticket_id, yes)}
                       for yes in (True, False)],
            "score": [{"text": t(f"rating.{score}"), "callback_data": callbacks.rating(ticket_id, score)}
                      for score in callbacks.SCORES]}
    return [rows[q] for q in VISIT_QUESTIONS if q in questions]


def history_text(session: Session, ticket: Ticket, viewer: Person | None, *,
                 tz: ZoneInfo) -> str:
    """Every event of the ticket in local time; handlers by first name, residents unnamed."""
    residents = {ticket.reporter_id, *follower_ids(session, ticket)}
    lines = [t("history.header", number=ticket.number, category=ticket.category.name,
               status=status_name(ticket.status))]
    for e in events_of(session, ticket):
        actor = session.get(Person, e.actor_id) if e.actor_id else None
        who = (t("actor.system") if actor is None else t("actor.you") if viewer and actor.id == viewer.id
               else t("actor.resident") if actor.id in residents else first_name(actor))
        lines.append(t("history.line_note" if e.note else "history.line", at=local_time(e.at, tz),
                       status=status_name(e.to_status) if e.kind == "status" else t(f"event.{e.kind}"),
                       actor=who, note=e.note))
    return "\n".join(lines)
