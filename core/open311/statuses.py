"""The one table from our ticket states to Open311's two, and the note that names ours.

Open311 knows `open` and `closed`; `status_notes` carries our state as residents read it
(data/messages/zh.yml, status.<state>). `resolved` is closed: the work is done and the
resident is asked to confirm; a resident who is not satisfied reopens it, and it is open again.
"""

from __future__ import annotations

from core.messages import t
from core.models import TicketStatus

S = TicketStatus
OPEN, CLOSED = "open", "closed"

STATUS: dict[TicketStatus, str] = {
    S.new: OPEN,
    S.accepted: OPEN,
    S.claimed: OPEN,
    S.escalated: OPEN,
    S.reopened: OPEN,
    S.triage: OPEN,  # back with the community, to be placed
    S.resolved: CLOSED,
    S.closed: CLOSED,
    S.rejected: CLOSED,
    S.duplicate: CLOSED,
    S.withdrawn: CLOSED,  # its reporter took it back before anyone claimed it
}


def public(status: TicketStatus) -> str:
    return STATUS[status]


def notes(status: TicketStatus) -> str:
    return t(f"status.{status.value}")


def ours(public_status: str) -> list[TicketStatus]:
    """Our states behind `open` or `closed` (ValueError for anything else)."""
    if public_status not in (OPEN, CLOSED):
        raise ValueError(public_status)
    return [s for s, p in STATUS.items() if p == public_status]
