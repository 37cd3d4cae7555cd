"""/broadcasts: a sender's scheduled notices (with cancel) and recent ones (with the delivery
report and the read count as it stands now, not as it stood when the report was sent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, Scope
from core.broadcasts import service as broadcasts
from core.messages import t
from core.models import Broadcast, BroadcastState, Person, utcnow

RECENT = 5  # notices /broadcasts shows besides the scheduled ones
PREVIEW_CHARS = 20


@dataclass(frozen=True)
class Listed:
    broadcast: Broadcast
    line: str


def _label(session: Session, b: Broadcast) -> str:
    return broadcasts.label(session, b.audience, Scope(community_id=b.community_id, grid_id=b.grid_id,
                                                         branch_id=b.branch_id))


def _line(session: Session, b: Broadcast, tz: ZoneInfo) -> str:
    text = (b.text or "").replace("\n", " ")
    text = text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")
    line = t("broadcast.list_item", id=b.id, when=b.scheduled_at.astimezone(tz).strftime("%m-%d %H:%M"),
             label=_label(session, b), count=b.recipients, text=text)
    if b.state is BroadcastState.done:
        line += "\n  " + broadcasts.report_text(broadcasts.counts(session, b.id), b.read_button).replace("\n", "\n  ")
    elif b.state is BroadcastState.sending:
        line += "\n  " + t("broadcast.list_state.sending",
                           progress=broadcasts.progress_text(broadcasts.counts(session, b.id)))
    elif b.state is BroadcastState.cancelled:
        line += "\n  " + t("broadcast.list_state.cancelled")
    return line


def listing(session: Session, person: Person | None, *, tz: ZoneInfo,
            now: datetime | None = None) -> tuple[list[Listed], list[Listed]]:
    """(scheduled, recent): the sender's notices still to go out, soonest first, and the last
    RECENT that went out, started or were cancelled after queueing, newest first."""
    if person is None:
        return [], []
    now = now or utcnow()
    mine = select(Broadcast).where(Broadcast.sender_id == person.id)
    scheduled = session.scalars(mine.where(Broadcast.state == BroadcastState.queued, Broadcast.scheduled_at > now)
                                .order_by(Broadcast.scheduled_at, Broadcast.id))
    recent = session.scalars(mine.where(
        (Broadcast.state.in_([BroadcastState.sending, BroadcastState.done]))
        | ((Broadcast.state == BroadcastState.queued) & (Broadcast.scheduled_at <= now))
        | ((Broadcast.state == BroadcastState.cancelled) & (Broadcast.recipients > 0)))
        .order_by(Broadcast.scheduled_at.desc(), Broadcast.id.desc()).limit(RECENT))
    return ([Listed(b, _line(session, b, tz)) for b in scheduled], [Listed(b, _line(session, b, tz)) for b in recent])


def cancel_scheduled(session: Session, broadcast_id: int, person: Person | None) -> Broadcast:
    """Cancel a scheduled notice of `person`'s that has not started; NotAllowed says why not."""
    b = session.get(Broadcast, broadcast_id, with_for_update=True)
    if b is None:
        raise NotAllowed(t("broadcast.deny.not_found"))
    if person is None or b.sender_id != person.id:
        raise NotAllowed(t("broadcast.deny.not_yours"))
    if b.state not in (BroadcastState.queued, BroadcastState.draft):
        raise NotAllowed(t("broadcast.deny.started") if b.state is not BroadcastState.cancelled
                         else t("broadcast.cancelled"))
    return broadcasts.cancel(session, broadcast_id, person)
